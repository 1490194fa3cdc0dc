"""``umbenet info``: what a model is made of, from a preset, a run or a checkpoint folder."""
from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from umbenet_cli.devices import describe_device, torch_build
from umbenet_cli.errors import UserError
from umbenet_cli.evaluation.head_diagnostics import class_geometry
from umbenet_cli.model import UMBEnet, UMBEnetConfig

# Which top-level parts of UMBEnet belong to which role in the paper's figure 2.
PARTS = {
    "backbone.clip.vision_model": "CLIP image tower",  # the frozen column says they are frozen
    "backbone.clip.text_model": "CLIP text tower",
    "backbone.clip": "CLIP projections, logit scale",
    "visual": "temporal transformer (E_v)",
    "audio": "audio encoder (E_a)",
    "text": "text projection (E_t)",
    "fusion": "AdaptiveFusion",
    "pool": "prompt pool (keys, values)",
    "sff": "sparse feature fusion",
    "class_prompts": "inherent prompts",
    "class_vectors": "learned class vectors (ablation)",
}


def parameter_table(model: UMBEnet, width: int | None = None) -> Table:
    """Parameters per part, trainable and frozen, as a rich table. ``width``: the console's; the
    roles wrap in the room the part names and counts leave, so the part names stay whole (rich
    would shrink the widest column first, and fold ``backbone.clip.vision_model``)."""
    counts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        part = next((k for k in PARTS if name.startswith(k + ".")), "other")
        row = counts.setdefault(part, [0, 0])
        row[0 if p.requires_grad else 1] += p.numel()
    total = [sum(v[i] for v in counts.values()) for i in (0, 1)]
    rows = [(part, PARTS.get(part, ""), f"{train:,}", f"{frozen:,}") for part, (train, frozen) in counts.items()]
    rows.append(("total", "", f"{total[0]:,}", f"{total[1]:,}"))
    role_width = None
    if width is not None:  # what the other columns take: their widest cell, 2 of padding each, 5 borders
        others = sum(max(len(r[i]) for r in rows + [("part", "", "trainable", "frozen")]) + 2 for i in (0, 2, 3))
        role_width = max(width - others - 2 - 5, 8)
    table = Table(title="parameters")  # what still does not fit folds inside its cell, never "…"
    table.add_column("part", overflow="fold")
    table.add_column("role", overflow="fold", max_width=role_width)
    table.add_column("trainable", justify="right", overflow="fold")
    table.add_column("frozen", justify="right", overflow="fold")
    for r in rows[:-1]:
        table.add_row(*r)
    table.add_row(*rows[-1], style="bold")
    return table


def prompt_length_line(cfg: UMBEnetConfig) -> str:
    """"64 = 32 pool + 32 inherent": Table 4's "Length" (the overall prompt) and its two parts."""
    if cfg.classifier != "prompts":
        return "none (classifier=vectors: learned class vectors, no prompts)"
    pool = f"{cfg.pool.length} pool" if cfg.pool.enabled else "0 pool (pool.enabled=false)"
    return f"{cfg.prompt_length} = {pool} + {cfg.inherent_length} inherent"


class InfoError(UserError, ValueError):
    """An ``umbenet info`` request that cannot be carried out; names the option and the fix."""


def run_checkpoint(run: str, fold: int | None = None) -> tuple[Path, str | None]:
    """The checkpoint ``umbenet info RUN`` describes, found as ``predict --run`` finds it (a run,
    stage or checkpoint folder; a run's final stage, its best checkpoint, else its last), and a note
    when RUN has several folds and no ``fold`` picks one: the first is described, the note lists them."""
    from umbenet_cli.inference.locate import PredictError, find_checkpoint, run_splits

    note = None
    splits = run_splits(run) if fold is None and Path(run).is_dir() else []
    if len(splits) > 1:
        fold = int(splits[0].name.removeprefix("fold"))
        note = (f"{run} has {len(splits)} folds ({', '.join(s.name.removeprefix('fold') for s in splits)}): "
                f"describing fold {fold}; pick another with --fold N")
    try:
        return find_checkpoint(run, "best", fold), note
    except PredictError as best_missing:
        try:
            return find_checkpoint(run, "last", fold), note
        except PredictError:
            raise best_missing from None


def describe_model(preset: str = "default", overrides: dict[str, str] | None = None,
                   checkpoint: str | None = None, console: Console | None = None,
                   device: torch.device | None = None, run: str | None = None,
                   fold: int | None = None) -> UMBEnet | None:
    """Build the model and print its resolved configuration, widths and parameter counts, and the
    device it would run on (with the torch build and the GPUs visible). The model comes from a
    preset (with ``overrides``), a ``checkpoint`` folder, or a ``run`` (``fold``: which fold's).

    Returns None when the backbone's weights are not on this machine (offline, not cached): the
    configuration is printed with a one-line note on stderr, as it needs no weights."""
    from umbenet_cli.model.backbone import BackboneError, BackboneNotHere

    if run and checkpoint:
        raise InfoError(f"RUN {run} and --checkpoint {checkpoint}: give one of them")
    if fold is not None and not run:
        raise InfoError(f"--fold {fold} picks a fold of RUN: `umbenet info runs/<name> --fold {fold}`")
    if overrides and (run or checkpoint):
        raise InfoError(f"--set {', '.join(overrides)}: --set changes a preset; a trained model is described "
                        f"as it was trained. Leave --set out")
    console = console or Console()
    notes = Console(stderr=True)
    device = device or torch.device("cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    console.print(f"[bold]device[/] {describe_device(device)}; {torch_build()}, {n} CUDA GPU(s) visible",
                  highlight=False)
    if run:
        found, note = run_checkpoint(run, fold)
        if note:
            notes.print(f"[yellow]note:[/] {note}", highlight=False)
        console.print(f"[bold]checkpoint[/] {found}", highlight=False)
        checkpoint = str(found)
    if checkpoint:
        from umbenet_cli.model.checkpoint import read_config

        config, _ = read_config(checkpoint)  # checked before any weights load
    else:
        config = UMBEnetConfig.preset(preset, **(overrides or {}))
    console.print(f"[bold]prompt length[/] {prompt_length_line(config)}", highlight=False)  # needs no backbone
    try:
        model = UMBEnet.load(checkpoint) if checkpoint else UMBEnet(config)
    except BackboneNotHere as exc:  # only the weights are missing: the configuration is all there is to show
        console.print("[bold]configuration[/]")
        console.print_json(config.to_json())
        notes.print(f"[yellow]note:[/] no widths or parameter counts: the weights of {exc.name} are not here "
                    f"({exc.why}); get them with `hf download {exc.name}` where there is internet, or point "
                    f"HF_HOME at a Hugging Face cache that holds them", highlight=False)
        return None
    except BackboneError:
        # The configuration needs no weights: show it, then say what could not be shown.
        console.print(f"[bold]configuration[/] (backbone {config.backbone} not loadable here: widths and "
                      f"parameter counts need its weights)")
        console.print_json(config.to_json())
        raise
    cfg, dims = model.config, model.backbone.dims
    console.print(f"[bold]backbone[/] {cfg.backbone}  (joint width {dims.embed_dim}, token width "
                  f"{dims.token_dim}, {dims.context_length} text positions, {dims.image_size} px, "
                  f"fingerprint {model.backbone.fingerprint()})")
    console.print(f"[bold]classes[/] ({len(cfg.classes)}): {', '.join(cfg.classes)}")
    console.print(f"[bold]prompt pool[/] N={cfg.pool.size} L_p={cfg.pool.length} top-k={cfg.pool.top_k} "
                  f"query={cfg.pool.query} ({cfg.pool.query_scope}) keys={'trained' if cfg.pool.train_keys else 'frozen'} "
                  f"balance={cfg.pool.balance} enabled={cfg.pool.enabled}; SFF gate={cfg.sff.gate} "
                  f"combine={cfg.sff.combine}; inherent tokens {cfg.inherent_length}; stage 2 carries: "
                  f"{cfg.pool.transfer}" + (f" (alpha {cfg.pool.transfer_alpha:g})" if cfg.pool.transfer == "significant" else ""))
    C, B = len(cfg.classes), cfg.optim.batch_size
    enc = model.class_prompts
    geo = class_geometry(model)
    console.print(f"[bold]class embeddings as built[/] pairwise cosine mean {geo['class_cosine']['mean']:.3f} "
                  f"(max {geo['class_cosine']['max']:.3f}); logit scale {geo['logit_scale']:.2f}, so a unit F_fusion "
                  f"can open at most {geo['logit_range']['ceiling_median']:.2f} logits between two classes (median "
                  f"pair; umbenet_cli/evaluation/head_diagnostics.py)", highlight=False)
    if enc is None:
        console.print(f"[bold]classifier[/] learned class vectors ({C} x {dims.embed_dim}), no text-tower pass")
        console.print(parameter_table(model, console.width))
        console.print_json(cfg.to_json())
        return model
    plain_len = int(enc.eos_pos.max()) + 1
    if enc.shared_prefix:
        prefix = 1 + (cfg.pool.length if cfg.pool.enabled else 0) + cfg.inherent_length
        console.print(f"[bold]class-prompt pass[/] shared prefix: {B} text-tower sequences a training step, one "
                      f"per clip, of {prefix} shared + {enc.packed.shape[0]} class positions (the plain way: "
                      f"{B} clips x {C} classes = {B * C} sequences of {plain_len})")
    else:
        console.print(f"[bold]class-prompt pass[/] {B} clips x {C} classes = {B * C} text-tower sequences "
                      f"of {plain_len} tokens per training step")
    console.print(parameter_table(model, console.width))
    console.print_json(cfg.to_json())
    return model
