"""The ``umbenet`` command. A thin layer: each command checks its inputs and calls one library
function; errors meant for users become a clean message and exit code 2, never a traceback."""
from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from umbenet_cli.errors import USER_ERRORS

app = typer.Typer(
    name="umbenet",
    help="UMBEnet toolkit: multimodal (video, audio, text) emotion recognition with missing modalities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
_ARGV: list[str] = []  # this invocation's arguments, handed to torchrun when training relaunches itself


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["pool.size=16", ...]`` -> ``{"pool.size": "16"}``; a malformed item is a user error."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE (e.g. --set pool.size=16)", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"umbenet {version('umbenet')}")
        raise typer.Exit()


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the terminal shows warnings; run logs get more
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def prep(
    source: Annotated[str, typer.Argument(help="Dataset adapter: mafw, dfew, ferv39k or manifest.")],
    root: Annotated[str, typer.Argument(help="Dataset root (for manifest: the CSV or list file).")],
    out: Annotated[Optional[str], typer.Option(help="Cache folder (default: cache/<source>).")] = None,
    preset: Annotated[str, typer.Option(help="Model preset whose frames, audio length and backbone the cache must fit.")] = "default",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a model config key, e.g. num_frames=8.")] = None,
    text: Annotated[Optional[str], typer.Option(help="MAFW: 'caption' (annotated) or 'asr' (Whisper).")] = None,
    media: Annotated[Optional[str], typer.Option(help="DFEW: 'auto', 'clips' (detect faces) or 'frames' (pre-cropped).")] = None,
    classes: Annotated[Optional[str], typer.Option(help="manifest: ordered class names, comma separated.")] = None,
    asr_model: Annotated[str, typer.Option(help="Whisper model name, or a local .pt file (--asr-backend whisper) or CTranslate2 folder (faster-whisper), for ASR text.")] = "base",
    asr_backend: Annotated[Optional[str], typer.Option(help="whisper (openai-whisper) or faster-whisper (CTranslate2); default: whisper for a .pt file, faster-whisper for a folder or a name.")] = None,
    language: Annotated[Optional[str], typer.Option(help="Whisper language code; default: detect per clip.")] = None,
    face_fallback: Annotated[str, typer.Option(help="Frames without a face: frame, neighbour or mark.")] = "frame",
    scene: Annotated[bool, typer.Option(help="Also keep low-resolution whole frames (scene stream).")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N for face detection, ASR and CLIP.")] = "cpu",
    workers: Annotated[int, typer.Option(help="Decoding threads.")] = 2,
    torch_threads: Annotated[Optional[int], typer.Option(help="torch threads for the whole run (default: CPUs minus --workers while detecting faces, torch's own setting for CLIP).")] = None,
    batch_clips: Annotated[int, typer.Option(help="Clips per face-detection / ASR batch.")] = 16,
    shard: Annotated[str, typer.Option(help="This machine's part of the clips, i/n (0-based).")] = "0/1",
    force: Annotated[bool, typer.Option(help="Redo clips already in the cache.")] = False,
    on_problem: Annotated[str, typer.Option(help="Dataset problems: 'stop' or 'skip' the clips concerned.")] = "stop",
    media_only: Annotated[bool, typer.Option(help="Run decode/face/audio/text only, not the CLIP embedding.")] = False,
) -> None:
    """Prepare a dataset: faces, frames, audio and text -> a Parquet feature cache."""
    from pathlib import Path

    from pipelines.prep import run_prep
    from pipelines.prep_options import PrepOptions, parse_shard_option
    from umbenet_cli.model.config import UMBEnetConfig

    source_options: dict = {}
    if text is not None:
        source_options["text"] = text
    if media is not None:
        source_options["media"] = media
    if classes is not None:
        source_options["classes"] = tuple(c.strip() for c in classes.split(",") if c.strip())
    opts = PrepOptions(
        source=source, root=Path(root), out=Path(out or f"cache/{source}"),
        model=UMBEnetConfig.preset(preset, **parse_overrides(set_)), source_options=source_options,
        asr_model=asr_model, asr_backend=asr_backend, language=language, face_fallback=face_fallback, scene=scene,
        device=device, workers=workers, torch_threads=torch_threads, batch_clips=batch_clips, shard=parse_shard_option(shard),
        force=force, on_problem=on_problem, stages=("media",) if media_only else ("media", "embed"))
    _device_note(opts.device)
    summary = run_prep(opts, console)
    if summary.status.get("failed", 0) == summary.clips:
        raise typer.Exit(1)


def _device_note(device: str) -> None:
    """One line on stderr when a GPU sits idle because the command runs on the CPU."""
    import torch

    from umbenet_cli.devices import cuda_unused_note

    note = cuda_unused_note(torch.device(device))
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False)


def _default_cache() -> str:
    """The only cache under ./cache, if there is exactly one."""
    from pathlib import Path

    found = sorted(p.parent.parent for p in Path("cache").glob("*/features/part-*.parquet"))
    found = sorted(set(found))
    if len(found) == 1:
        return str(found[0])
    from umbenet_cli.training.options import TrainError

    raise TrainError("which cache? pass --cache DIR" + (f" (found {[str(f) for f in found]})" if found
                     else " (none under ./cache: run `umbenet prep` first)"))


def _given(ctx: typer.Context) -> set[str]:
    """The parameters of this command the user typed (not left at their defaults)."""
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


_RESUME_HINT: list[str] = []  # the command that continues what this invocation started (for Ctrl-C)


def _holds_run_lock(node_rank: int) -> bool:
    """Whether this process holds the run's lock: the one the user started (a launcher: on node 0,
    where rank 0 writes), or rank 0 under a torchrun the user started; never a worker of ours."""
    return _speaks_for_the_run() and (_under_launcher() or node_rank == 0)


def _command_line() -> str:
    import shlex

    return "umbenet " + shlex.join(_ARGV)


def _training_notes(runs, doing: str) -> None:
    """A warning for each run that `umbenet train` is still writing into (``doing``: what this
    command does with it meanwhile)."""
    from umbenet_cli.training.run_lock import training_now

    for run in runs:
        note = training_now(run)
        if note:
            console.print(f"[bold yellow]warning:[/] {note}: {doing}", highlight=False)


@app.command()
def train(
    ctx: typer.Context,
    cache: Annotated[Optional[str], typer.Option(help="Feature cache from `umbenet prep` (default: the run's own with --resume, else the only one under ./cache).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run name: runs/<name> (default: <cache>-<preset>).")] = None,
    runs_dir: Annotated[str, typer.Option(help="Folder holding the runs.")] = "runs",
    preset: Annotated[str, typer.Option(help="Model and schedule preset: default, paper, authors-code, tiny.")] = "default",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. pool.size=16, optim.lr=2e-4. "
                    "pool.balance=true adds frequency-balanced selection (not in the paper; its cost: every prompt is "
                    "picked within the first steps and training selects unlike evaluation; stage 2 still carries only "
                    "what the queries themselves chose).")] = None,
    stage: Annotated[str, typer.Option(help="1, 2, both, or one (the one-stage ablation). On an existing run: adds the stage.")] = "both",
    fold: Annotated[Optional[str], typer.Option(help="Fold to hold out (1-5), or 'all' for the full protocol.")] = None,
    modalities: Annotated[str, typer.Option(help="Modalities to train on, e.g. video,text.")] = "video,audio,text",
    exclude_classes: Annotated[Optional[str], typer.Option(help="Classes left out of training, validation and test, with their prompts (e.g. neutral: MAFW's 10-class protocol); from the same cache.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of the training fold kept for validation (stratified).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the validation split, batches and modality draws.")] = 0,
    init_from: Annotated[Optional[str], typer.Option(help="Stage 2: the stage-1 run or checkpoint to take prompts from.")] = None,
    all_modalities: Annotated[bool, typer.Option("--all-modalities", help="With --stage one: every clip presents all its modalities (no random missing), an ablation arm.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run from its last checkpoint (options that may change: see the README).")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda (with --gpus to pick them).")] = "cpu",
    gpus: Annotated[Optional[str], typer.Option(help="Exactly these GPUs, e.g. 0,1 (more than one: DDP via torchrun).")] = None,
    nproc: Annotated[int, typer.Option(help="Processes on this node for --device cpu (gloo).")] = 1,
    nnodes: Annotated[int, typer.Option(help="Machines taking part.")] = 1,
    node_rank: Annotated[int, typer.Option(help="This machine's rank among --nnodes.")] = 0,
    master_addr: Annotated[str, typer.Option(help="Address of node 0.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Port on node 0 with --nnodes > 1 (one node picks a free port).")] = 29511,
    save_every: Annotated[int, typer.Option(help="Also checkpoint every N steps (0: each epoch).")] = 0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop each stage after N steps (smoke tests).")] = None,
    logger: Annotated[str, typer.Option(help="Live curves: tensorboard (tensorboard --logdir runs), wandb (offline unless configured) or none. metrics.jsonl is always written.")] = "tensorboard",
) -> None:
    """Train UMBEnet on a feature cache: stage 1 (unimodal prompts), stage 2 (missing modalities)."""
    from pathlib import Path

    from umbenet_cli.data.cache_io import features_dir, table_spec
    from umbenet_cli.model.config import UMBEnetConfig
    from umbenet_cli.training import distributed as D
    from umbenet_cli.training.options import TrainError, TrainOptions, absolute
    from umbenet_cli.training.resume import continue_run, resume_command
    from umbenet_cli.training.run import prepare, run_training
    from umbenet_cli.training.tracking import check_logger

    check_logger(logger)
    mods = tuple(m.strip() for m in modalities.split(",") if m.strip())
    name = name or f"{Path(cache or _default_cache()).name}-{preset}"
    run_dir = absolute(Path(runs_dir) / name)
    gpu_ids = D.parse_gpus(gpus)
    if gpu_ids:
        device = "cuda"
    if _holds_run_lock(node_rank):  # one writer per run folder, for as long as this command runs
        from umbenet_cli.training.run_lock import take

        lock = ctx.with_resource(take(run_dir, command=_command_line()))
        if lock.note:
            console.print(f"[yellow]note: {run_dir.name}: {lock.note}[/]", highlight=False)
    continuing = (run_dir / "run.json").is_file()
    if continuing:
        values = {"cache": cache, "preset": preset, "set": parse_overrides(set_), "stage": stage, "fold": fold,
                  "modalities": mods, "exclude_classes": exclude_classes, "val_fraction": val_fraction, "seed": seed, "init_from": init_from, "all_modalities": all_modalities,
                  "device": device, "save_every": save_every, "max_steps": max_steps}
        given = _given(ctx) | ({"device"} if gpu_ids else set())
        opts, notes = continue_run(run_dir, {k: v for k, v in values.items() if k in given or
                                             (k == "set" and "set_" in given)}, resume)
        for note in notes:
            console.print(f"[bold]{run_dir.name}[/]: {note}", highlight=False)
    elif resume:
        raise TrainError(f"--resume: no run at {run_dir} (no run.json); check --name / --runs-dir")
    else:
        cache = cache or _default_cache()
        spec = table_spec(features_dir(cache))
        if spec is None:
            raise TrainError(f"no feature cache at {cache}: run `umbenet prep` first (or pass --cache)")
        from umbenet_cli.data.class_subset import kept_classes, parse_class_names

        kept = kept_classes(spec.classes, parse_class_names(exclude_classes))
        overrides = parse_overrides(set_)
        overrides.setdefault("classes", list(kept))
        opts = TrainOptions(cache=absolute(cache), run_dir=run_dir, model=UMBEnetConfig.preset(preset, **overrides),
                            stage=stage, fold=fold, modalities=mods,
                            exclude_classes=tuple(c for c in spec.classes if c not in kept),
                            val_fraction=val_fraction, seed=seed, init_from=absolute(init_from) if init_from else None,
                            all_modalities=all_modalities,
                            device=device, save_every=save_every, max_steps=max_steps, extra={"preset": preset})
    _RESUME_HINT[:] = [resume_command(run_dir)]
    if nproc > 1 and not gpu_ids and opts.device != "cpu":
        raise D.DeviceError(f"--nproc {nproc} --device {opts.device}: --nproc starts CPU processes (gloo); "
                            f"for several GPUs pass --gpus, e.g. --gpus {','.join(map(str, range(nproc)))}")
    world = (len(gpu_ids) if gpu_ids else nproc) * nnodes
    if world > 1 and not D.under_launcher():
        D.check_gpus(gpu_ids) if gpu_ids else D.resolve_device(opts.device)
        prepare(opts, new_run=not continuing)  # report input problems here, once, before spawning
        # The workers see run.json once rank 0 rewrites it: they continue the run as decided here.
        rc = D.relaunch(_ARGV + (["--resume"] if continuing and not resume else []), len(gpu_ids) or nproc,
                        gpu_ids, nnodes, node_rank, master_addr, master_port, console=console)
        if rc == 0 and node_rank == 0:
            record_command(run_dir, _ARGV)
        raise typer.Exit(rc)
    if len(gpu_ids) == 1:
        D.check_gpus(gpu_ids)
        opts = TrainOptions(**{**opts.__dict__, "device": f"cuda:{gpu_ids[0]}"})
    info = D.setup(opts.device)
    finished = False
    try:
        run_training(opts, info, console, resume=continuing, new_run=not continuing, logger=logger)
        if info.main and not D.under_launcher():  # under torchrun the launching process records it
            record_command(run_dir, _ARGV)
        finished = True
    finally:
        D.cleanup(info, finished)


@app.command("eval")
def eval_(
    runs: Annotated[Optional[list[str]], typer.Argument(metavar="RUNS", help="Run folders (runs/<name>) or stage folders (default: every run under --runs-dir with a checkpoint).")] = None,
    drop: Annotated[Optional[str], typer.Option(help="Modalities to mask, e.g. audio or audio,text. Default: every subset.")] = None,
    split: Annotated[str, typer.Option(help="test (the held-out fold) or val.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best (on validation) or last.")] = "best",
    cache: Annotated[Optional[str], typer.Option(help="Evaluate on this cache instead of the run's own.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    runs_dir: Annotated[str, typer.Option(help="Folder searched when no RUN is given.")] = "runs",
    wide: Annotated[bool, typer.Option(help="Also print the other columns (clips left out, classes averaged, the other scores without neutral) in a second table.")] = False,
) -> None:
    """UAR/WAR per modality subset (the paper's Table 3), confusion matrices, saved as JSON/CSV/PNG."""
    from pathlib import Path

    from umbenet_cli.evaluation.evaluate import EvalError, parse_drop
    from pathlib import Path

    from umbenet_cli.evaluation.eval_runs import evaluate_runs, runs_with_checkpoints

    if split not in ("test", "val"):
        raise EvalError(f"--split {split!r}: choose test or val")
    if checkpoint not in ("best", "last"):
        raise EvalError(f"--checkpoint {checkpoint!r}: choose best or last")
    from umbenet_cli.devices import resolve_device

    device = str(resolve_device(device))
    _device_note(device)
    if not runs:
        runs = [str(r) for r in runs_with_checkpoints(runs_dir, checkpoint)]
        console.print(f"evaluating {len(runs)} run(s) under {runs_dir}/: {', '.join(Path(r).name for r in runs)}",
                      highlight=False)
    _training_notes(runs, f"evaluating the checkpoints it has finished so far ('{checkpoint}' as it is now); "
                          f"evaluate again when it ends")
    evaluate_runs(runs, split, parse_drop(drop), checkpoint, cache, device, Console(), wide=wide)
    for run in runs:
        if (Path(run) / "run.json").is_file():
            record_command(run, _ARGV)


@app.command()
def report(
    runs: Annotated[Optional[list[str]], typer.Argument(metavar="RUNS", help="Evaluated run folders, runs/<name> (default: every run under --runs-dir with eval results), or one study folder, runs/<study>: its plan's tables.")] = None,
    out: Annotated[Optional[str], typer.Option(help="Report folder (default: reports/<name>).")] = None,
    split: Annotated[str, typer.Option(help="Which eval results: test or val.")] = "test",
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    runs_dir: Annotated[str, typer.Option(help="Folder searched when no RUN is given.")] = "runs",
) -> None:
    """One report from evaluated runs: the paper's tables beside ours, confusion, curves, prompt pool, features."""
    from pathlib import Path

    from umbenet_cli.reporting import build_report
    from umbenet_cli.study.results import build_study_report, is_study

    if runs and len(runs) == 1 and is_study(runs[0]):  # runs/STUDY: the plan's tables
        build_study_report(runs[0], out=out, split=split, title=title, console=Console())
        return

    root = Path(runs_dir)
    _training_notes(runs or (sorted(p.parent for p in root.glob("*/run.json")) if root.is_dir() else []),
                    "the report shows its curves and results as they are now")
    build_report(runs or [], out=out, split=split, title=title, runs_dir=runs_dir, console=Console())


@app.command()
def predict(
    inputs: Annotated[str, typer.Argument(metavar="VIDEO_OR_FOLDER", help="A video file, or a folder of videos (.mp4 .avi .mkv .mov .webm .m4v).")],
    run: Annotated[Optional[str], typer.Option(help="Run folder (runs/<name>), stage folder or checkpoint folder. Default: the only run under --runs-dir.")] = None,
    checkpoint: Annotated[str, typer.Option(help="best (on validation) or last.")] = "best",
    fold: Annotated[Optional[int], typer.Option(help="The fold's model, for a run trained on several folds.")] = None,
    runs_dir: Annotated[str, typer.Option(help="Folder holding the runs (for the default --run).")] = "runs",
    asr_model: Annotated[str, typer.Option(help="Whisper model name, or a local .pt file (--asr-backend whisper) or CTranslate2 folder (faster-whisper), for the transcript.")] = "base",
    asr_backend: Annotated[Optional[str], typer.Option(help="whisper (openai-whisper) or faster-whisper (CTranslate2); default: whisper for a .pt file, faster-whisper for a folder or a name.")] = None,
    asr: Annotated[bool, typer.Option("--asr/--no-asr", help="Transcribe speech (--no-asr: text is missing).")] = True,
    language: Annotated[Optional[str], typer.Option(help="Whisper language code; default: detect per video.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N for faces, ASR and the model.")] = "cpu",
    json_path: Annotated[Optional[str], typer.Option("--json", help="Also write every result to this JSON file.")] = None,
    top: Annotated[int, typer.Option(help="Classes highlighted (one video) or listed (a folder).")] = 3,
    batch_clips: Annotated[int, typer.Option(help="Videos decoded, face-detected and run through the model together.")] = 8,
) -> None:
    """Predict the emotion of videos with a trained run, with whatever modalities each video has."""
    from pathlib import Path

    from umbenet_cli.inference.predict import PredictOptions, run_predict

    opts = PredictOptions(inputs=Path(inputs), run=Path(run) if run else None, checkpoint=checkpoint, fold=fold,
                          runs_dir=Path(runs_dir), asr_model=asr_model if asr else None, asr_backend=asr_backend, language=language,
                          device=device, json_path=Path(json_path) if json_path else None, top=top,
                          batch_clips=batch_clips)
    _device_note(opts.device)
    predictions = run_predict(opts, console, Console())
    failed = [p for p in predictions if not p.ok]
    if failed:  # the others are printed and written; the exit code says not all went through
        console.print(f"[yellow]{len(failed)} of {len(predictions)} videos could not be predicted "
                      f"({', '.join(Path(p.path).name for p in failed[:5])}{' ...' if len(failed) > 5 else ''}: "
                      f"status error above{' and in ' + json_path if json_path else ''}); exit code 1[/]",
                      highlight=False)
        raise typer.Exit(1)


@app.command()
def export(
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run folder (runs/<name>), or one of its stage or checkpoint folders.")],
    out: Annotated[str, typer.Option(help="The model folder to write (weights, config, classes, model card).")],
    fold: Annotated[Optional[int], typer.Option(help="The fold's model, for a run trained on several folds.")] = None,
    checkpoint: Annotated[str, typer.Option(help="best (on validation) or last.")] = "best",
    force: Annotated[bool, typer.Option(help="Replace --out when it already holds an exported model.")] = False,
) -> None:
    """Export a trained model as a self-contained folder with a model card (publish it with `hf upload`)."""
    from umbenet_cli.inference.export import export_model

    _training_notes([run], f"exporting its finished '{checkpoint}' checkpoint as it is now")
    done = export_model(run, out, fold=fold, checkpoint=checkpoint, force=force)
    Console().print(f"exported {done['from']} -> {done['out']}"
                    + ("" if done["evaluated"] else " (not evaluated: the card has no scores; run `umbenet eval` first)"),
                    highlight=False)


study_app = typer.Typer(help="Train and evaluate a whole matrix of runs (the paper's tables, an ablation, a TOML plan).",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")


@study_app.command("run")
def study_run(
    plan: Annotated[str, typer.Argument(help="table3, table4, paper (both), ablation, or a TOML plan file.")],
    cache: Annotated[Optional[str], typer.Option(help="Feature cache from `umbenet prep` (default: the study's own when it exists).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Study name: runs/<name> (default: the plan's name).")] = None,
    runs_dir: Annotated[str, typer.Option(help="Folder holding the studies.")] = "runs",
    fold: Annotated[str, typer.Option(help="Folds: all, N, or a comma list such as 1,2.")] = "all",
    classes: Annotated[str, typer.Option(help="11 (all classes), 10 (neutral left out: --exclude-classes neutral) or both.")] = "11",
    preset: Annotated[str, typer.Option(help="Model and schedule preset of every run.")] = "default",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Config override for every run, e.g. optim.max_epochs=1 (a plan run's own --set wins).")] = None,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (job arrays through submitit).")] = "local",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List every fold-run with its commands (or the Slurm submission); run and create nothing.")] = False,
    extend: Annotated[bool, typer.Option("--extend", help="Add the runs a changed plan has beyond the recorded ones.")] = False,
    take_over: Annotated[bool, typer.Option("--take-over", help="Run the fold-runs an earlier Slurm submission holds, without asking squeue whether its jobs still run (after scancel).")] = False,
    retry: Annotated[int, typer.Option(help="Retry a failing fold-run up to N more times in this go.")] = 0,
    jobs: Annotated[int, typer.Option(help="local: fold-runs at once (default: 1, or one per GPU group with --gpus).")] = 0,
    gpus: Annotated[Optional[str], typer.Option(help="local: GPUs to share out, e.g. 0,1,2,3 (each job its own).")] = None,
    gpus_per_job: Annotated[int, typer.Option(help="local: GPUs per job (more than 1: DDP).")] = 1,
    slurm_partition: Annotated[Optional[str], typer.Option(help="slurm: partition.")] = None,
    slurm_time: Annotated[str, typer.Option(help="slurm: time limit per task (minutes or HH:MM:SS); pre-empted or timed-out tasks requeue and resume.")] = "24:00:00",
    slurm_gpus_per_job: Annotated[int, typer.Option(help="slurm: GPUs per task.")] = 1,
    slurm_array_parallelism: Annotated[Optional[int], typer.Option(help="slurm: tasks running at once.")] = None,
    slurm_extra: Annotated[Optional[list[str]], typer.Option(help="slurm: another sbatch option, KEY=VALUE (e.g. account=abc, qos=high).")] = None,
) -> None:
    """Train and evaluate every run of a plan on every fold asked; the same command resumes it."""
    from umbenet_cli.devices import parse_gpus
    from umbenet_cli.study.local import LocalOptions
    from umbenet_cli.study.run import StudyRequest, run_study
    from umbenet_cli.study.slurm import SlurmOptions

    gpu_ids = tuple(parse_gpus(gpus))
    req = StudyRequest(plan=plan, cache=cache, name=name, runs_dir=runs_dir, fold=fold, classes=classes, preset=preset,
                       sets=parse_overrides(set_), launcher=launcher, dry_run=dry_run, extend=extend, take_over=take_over,
                       local=LocalOptions(jobs=jobs or (0 if gpu_ids else 1), gpus=gpu_ids, gpus_per_job=gpus_per_job,
                                          retry=retry),
                       slurm=SlurmOptions(partition=slurm_partition, time=slurm_time, gpus_per_job=slurm_gpus_per_job,
                                          array_parallelism=slurm_array_parallelism, extra=parse_overrides(slurm_extra)))
    rc = run_study(req, Console(), console)
    if rc:
        raise typer.Exit(rc)


@study_app.command("status")
def study_status(study: Annotated[str, typer.Argument(metavar="STUDY", help="The study folder, runs/<study>.")]) -> None:
    """One line per fold-run: state, epochs, best validation UAR, test UAR/WAR, time."""
    from pathlib import Path

    from umbenet_cli.study.status import print_status

    print_status(Path(study), Console())


def record_command(run_dir, argv: list[str]) -> None:
    """Append this command line to ``run_dir/commands.txt`` (how the run was made, for its card)."""
    import shlex
    from pathlib import Path

    with open(Path(run_dir) / "commands.txt", "a") as fh:
        fh.write("umbenet " + shlex.join(argv) + "\n")


@app.command()
def info(
    run: Annotated[Optional[str], typer.Argument(metavar="[RUN]", help="Describe this run's model: a run folder (runs/<name>, as eval takes), a stage or checkpoint folder.")] = None,
    fold: Annotated[Optional[int], typer.Option(help="With RUN: the fold's model, for a run of several folds (default: list them, describe the first).")] = None,
    preset: Annotated[str, typer.Option(help="Model preset: default, paper, authors-code, tiny.")] = "default",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. pool.size=16.")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="Describe this checkpoint folder instead.")] = None,
    device: Annotated[str, typer.Option(help="Check a device (cpu, cuda or cuda:N) and show it with the torch build.")] = "cpu",
) -> None:
    """Build a model (from a preset, a run or a checkpoint) and show its configuration, parameters and device."""
    from umbenet_cli.describe import describe_model
    from umbenet_cli.devices import resolve_device

    dev = resolve_device(device)
    _device_note(str(dev))
    describe_model(preset=preset, overrides=parse_overrides(set_), checkpoint=checkpoint, device=dev, run=run, fold=fold)


def _rank_tag() -> str:
    """`` (process 1 of 2)`` inside a multi-process run, so each line says who wrote it."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f" (process {os.environ.get('RANK', '0')} of {world})" if world > 1 and "LOCAL_RANK" in os.environ else ""


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """``name`` (ClickException, Exit, Abort) from every click the installed typer may raise: the
    standalone ``click`` and the copy typer >= 0.24 vendors as ``typer._click``."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


CLICK_ERRORS = _click_classes("ClickException")  # usage errors: bad command, option, value
EXITS = _click_classes("Exit") + (typer.Exit,)
ABORTS = _click_classes("Abort") + (typer.Abort,)


_INTERRUPTED: list[bool] = []  # a worker's Ctrl-C (torchrun passes the launcher's on)


def _worker_start() -> None:
    """In a training worker: end with the launcher; note a Ctrl-C, so that the errors it causes in
    the other ranks' collectives stay quiet."""
    import signal

    from umbenet_cli.training.distributed import die_with_launcher

    die_with_launcher()

    def interrupted(signum, frame):
        _INTERRUPTED.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)


def _speaks_for_the_run() -> bool:
    """Whether this process prints the "interrupted" line: not a worker of ``--nproc``/``--gpus``
    (the launcher prints it), and under a torchrun the user started, rank 0 alone."""
    import os

    if not _under_launcher():
        return True
    return os.environ.get("UMBENET_LAUNCHED") != "1" and os.environ.get("RANK", "0") == "0"


def _under_launcher() -> bool:
    """``training.distributed.under_launcher`` without importing torch (every command starts here)."""
    import os

    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def main(argv: list[str] | None = None) -> int:
    """Entry point; callable from tests with an argv list. Returns the exit code."""
    global _ARGV
    _ARGV = list(argv) if argv is not None else sys.argv[1:]
    _RESUME_HINT.clear()
    if _under_launcher():
        _worker_start()
    elif "UMBENET_JOB_OF" in os.environ:  # a command of `umbenet study`: it ends with the study
        from umbenet_cli.study.jobs import JOB_OF_ENV
        from umbenet_cli.training.distributed import die_with_launcher

        die_with_launcher(int(os.environ.pop(JOB_OF_ENV)))  # not passed on to its own children
        # The study stops a job with one SIGINT, as Ctrl-C would. A launcher started in the
        # background (`nohup umbenet study run ... &`) hands its children SIGINT ignored, and
        # Python then installs no handler: the SIGINT would do nothing and the job would be killed
        # after the grace time instead of keeping its checkpoint.
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Without standalone mode, click returns the code of an Exit (Ctrl-C is Exit(130)).
        rc = app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        console.print(f"[bold red]error{_rank_tag()}:[/] {exc}", highlight=False)
        return 2
    except EXITS as exc:
        return exc.exit_code
    except ABORTS:
        console.print("[yellow]aborted[/]")
        return 130
    except CLICK_ERRORS as exc:
        exc.show()  # click's own usage line, "Try 'umbenet --help'", and the error
        return exc.exit_code
    except Exception as exc:
        from umbenet_cli.training.distributed import peer_failure

        if not peer_failure(exc):
            raise
        if _INTERRUPTED:  # Ctrl-C stopped the other ranks too: no failure to report
            rc = 130
        else:
            # Another training process failed and printed its own message; say so in one line.
            console.print(f"[bold red]stopped{_rank_tag()}:[/] another training process failed "
                          f"({type(exc).__name__}); its message is above", highlight=False)
            return 1
    if rc in (130, 143) and _speaks_for_the_run():  # Ctrl-C, or a kill (SIGTERM) of a launcher
        how = f"`{_RESUME_HINT[0]}`" if _RESUME_HINT else "the same command again"
        console.print(f"[yellow]interrupted: work already finished is kept; to resume, run {how}[/]", highlight=False)
    if _INTERRUPTED:
        # A worker leaves at once: its files are closed (checkpoints are written whole or not at
        # all), and another rank may wait in a collective until this process is gone; the
        # interpreter's own clean-up of torch takes seconds.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
