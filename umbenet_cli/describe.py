"""``umbenet info``: what a model is made of, from a preset or a checkpoint folder."""
from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from umbenet_cli.devices import describe_device, torch_build
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


ROLE_WIDTH = 18  # 80 columns less the widest part name, two 11-digit counts, padding and borders


def parameter_table(model: UMBEnet) -> Table:
    """Parameters per part, trainable and frozen, as a rich table."""
    counts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        part = next((k for k in PARTS if name.startswith(k + ".")), "other")
        row = counts.setdefault(part, [0, 0])
        row[0 if p.requires_grad else 1] += p.numel()
    # At 80 columns the part names stay whole and the roles wrap; narrower, cells fold (never "…").
    table = Table(title="parameters")
    table.add_column("part", overflow="fold")
    table.add_column("role", overflow="fold", max_width=ROLE_WIDTH)
    table.add_column("trainable", justify="right", overflow="fold")
    table.add_column("frozen", justify="right", overflow="fold")
    for part, (train, frozen) in counts.items():
        table.add_row(part, PARTS.get(part, ""), f"{train:,}", f"{frozen:,}")
    total = [sum(v[i] for v in counts.values()) for i in (0, 1)]
    table.add_row("total", "", f"{total[0]:,}", f"{total[1]:,}", style="bold")
    return table


def describe_model(preset: str = "default", overrides: dict[str, str] | None = None,
                   checkpoint: str | None = None, console: Console | None = None,
                   device: torch.device | None = None) -> UMBEnet:
    """Build the model and print its resolved configuration, widths and parameter counts, and the
    device it would run on (with the torch build and the GPUs visible)."""
    from umbenet_cli.model.backbone import BackboneError

    console = console or Console()
    device = device or torch.device("cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    console.print(f"[bold]device[/] {describe_device(device)}; {torch_build()}, {n} CUDA GPU(s) visible",
                  highlight=False)
    if checkpoint:
        from umbenet_cli.model.checkpoint import read_config

        config, _ = read_config(checkpoint)  # checked before any weights load
    else:
        config = UMBEnetConfig.preset(preset, **(overrides or {}))
    try:
        model = UMBEnet.load(checkpoint) if checkpoint else UMBEnet(config)
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
                  f"query={cfg.pool.query} balance={cfg.pool.balance} enabled={cfg.pool.enabled}; "
                  f"inherent tokens {cfg.inherent_length}")
    C, B = len(cfg.classes), cfg.optim.batch_size
    enc = model.class_prompts
    geo = class_geometry(model)
    console.print(f"[bold]class embeddings as built[/] pairwise cosine mean {geo['class_cosine']['mean']:.3f} "
                  f"(max {geo['class_cosine']['max']:.3f}); logit scale {geo['logit_scale']:.2f}, so a unit F_fusion "
                  f"can open at most {geo['logit_range']['ceiling_median']:.2f} logits between two classes (median "
                  f"pair; umbenet_cli/evaluation/head_diagnostics.py)", highlight=False)
    if enc is None:
        console.print(f"[bold]classifier[/] learned class vectors ({C} x {dims.embed_dim}), no text-tower pass")
        console.print(parameter_table(model))
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
    console.print(parameter_table(model))
    console.print_json(cfg.to_json())
    return model
