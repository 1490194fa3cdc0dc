"""``umbenet prep``: a dataset root -> a validated Parquet feature cache, resumable and shardable.

    scan (adapter, no decoding) -> problems table -> stop or skip
    media stage: decode T sampled frames, crop faces, 16 kHz audio, text (annotation or ASR)
    embed stage: frozen CLIP towers over the stored crops and texts

Each stage skips the clips its table already holds (``--force`` redoes them), writes finished rows
as it goes in atomic part files, and can run on one shard of the clips (``--shard i/n``), so that
many machines fill one cache folder together. Interrupted runs resume where they stopped.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from pipelines.prep_options import SAMPLING_RULE, PrepError, PrepOptions, in_shard
from pipelines.sources import apply_policy, problems_table, scan_source
from umbenet_cli.data.cache_io import (CacheSpec, PartWriter, done_ids, features_dir, iter_media,
                                       media_dir, read_features, table_spec)
from umbenet_cli.data.cache_schema import spec_diff

log = logging.getLogger(__name__)


@dataclass
class PrepSummary:
    clips: int = 0
    media_done_before: int = 0
    embed_done_before: int = 0
    status: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)


class ClipRate(TextColumn):
    """clips/s of a task (rich's speed column shows bytes)."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # noqa: D102
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} clips/s" if speed else "", style="progress.data.speed")


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description:<6}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), ClipRate(), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=console, transient=False)


def cache_spec(opts: PrepOptions, dataset: str, classes: tuple[str, ...]) -> CacheSpec:
    return CacheSpec(dataset=dataset, classes=tuple(classes), num_frames=opts.num_frames,
                     audio_seconds=opts.audio_seconds, sample_rate=opts.sample_rate,
                     sampling=SAMPLING_RULE, scene=opts.scene)


def _check_spec(table_dir, want: CacheSpec, what: str) -> None:
    have = table_spec(table_dir)
    if have is not None and have != want:
        raise PrepError(
            f"{table_dir} already holds a {what} table made with other settings:\n  "
            + "\n  ".join(spec_diff(have, want))
            + f"\nFix: use another --out, or pass --force to rebuild the {what} table with these settings.")


def limit_heap_growth() -> bool:
    """Cap oneDNN's primitive cache at 64 entries (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, default
    1,024), so that prep's memory stays flat however many clips it prepares.

    MTCNN's R-net and O-net get a new batch shape (the number of candidate faces) on nearly every
    call; oneDNN builds and caches a primitive for each, and these long-lived allocations sit
    between big short-lived buffers, so the heap grows with the clip count (benchmarks/perf,
    finding 3). Measured on the 2-CPU machine, media stage, 100 -> 400 sample clips, peak RSS
    (fresh processes, OMP_NUM_THREADS=1): as before 1,519 -> 2,216 MiB (1.46x); cache at 64
    1,404 -> 1,336 MiB (flat), face detection as fast as before (6.9 s vs 6.9 s for 33 clips).
    The alternative of finding 3, ``mallopt(M_MMAP_THRESHOLD, 64 KiB)``, also kept it flat (1,211
    -> 1,245 MiB) but made face detection 45% slower (6.7 -> 9.9 s; media stage 20-28%), because
    every large tensor then comes from fresh, zero-filled pages; it is not used.

    oneDNN reads the variable when it creates its first primitive, so this works in a process that
    has not run a convolution yet (``umbenet prep``); elsewhere it changes nothing. A value the
    user set (or DNNL_PRIMITIVE_CACHE_CAPACITY) wins.

    Returns:
        True when the variable was set here.
    """
    if any(v in os.environ for v in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")):
        return False
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "64"
    return True


def run_prep(opts: PrepOptions, console: Console | None = None) -> PrepSummary:
    console = console or Console(stderr=True)
    limit_heap_growth()
    summary = PrepSummary()
    t_start = time.perf_counter()

    try:
        scan = scan_source(opts.source, opts.root, **opts.source_options)
    except TypeError:  # an option of another adapter, e.g. --media for mafw
        raise PrepError(f"options {sorted(opts.source_options)} do not apply to source {opts.source!r}; "
                        f"see `umbenet prep --help` for which options go with which source") from None
    except ValueError as exc:
        raise PrepError(str(exc)) from None
    if scan.problems:
        console.print(problems_table(scan))
    scan = apply_policy(scan, on_problem=opts.on_problem)
    records = sorted((r for r in scan.records if in_shard(r.clip_id, opts.shard)), key=lambda r: r.clip_id)
    summary.clips = len(records)
    if not records:
        raise PrepError(f"no clips to prepare in {opts.root} (shard {opts.shard_name}); check the dataset root")
    console.print(f"[bold]{scan.dataset}[/]: {len(scan.records)} clips, {len(records)} in shard "
                  f"{opts.shard_name}, protocol {scan.protocol}; cache -> {opts.out}")
    spec = cache_spec(opts, scan.dataset, scan.classes)
    summary.seconds["scan"] = time.perf_counter() - t_start

    from pipelines.media_stage import torch_threads

    with progress_bar(console) as progress, torch_threads(opts.torch_threads):
        if "media" in opts.stages:
            expect_text = scan.dataset == "mafw" or any(r.text_source != "none" for r in scan.records)
            if not expect_text:  # not one clip has text: say so once, rather than in every clip
                summary.reasons["text missing for every clip: the source gives none" + (
                    " (the manifest has no `text` column: add one, or pass --text asr)"
                    if opts.source == "manifest" else "")] += len(records)
            _media(opts, spec, scan.dataset, expect_text, records, progress, summary)
        if "embed" in opts.stages:
            _embed(opts, spec, {r.clip_id for r in records}, progress, summary)
    _tally(opts, records, summary)
    summary.seconds["total"] = time.perf_counter() - t_start
    console.print(summary_table(summary))
    return summary


def _media(opts, spec, dataset, expect_text, records, progress, summary) -> None:
    from pipelines.media_stage import MediaStage, media_threads, torch_threads

    table = media_dir(opts.out)
    if not opts.force:
        _check_spec(table, spec.for_table("media"), "media")
    done = set() if opts.force or not table.exists() else done_ids(table)
    todo = [r for r in records if r.clip_id not in done]
    stage = MediaStage(opts, dataset, expect_text)
    t0 = time.perf_counter()
    with torch_threads(media_threads(opts) if todo else None):
        if any(r.text_source == "asr" for r in todo):
            stage.asr()  # a model that does not load stops prep here, before anything is written or removed
        if opts.force and table.exists():
            shutil.rmtree(table)
        summary.media_done_before = len(records) - len(todo)
        task = progress.add_task("media", total=len(records), completed=summary.media_done_before)
        with PartWriter(table, spec, shard=opts.shard_name, rows_per_part=4 * opts.batch_clips) as writer:
            stage.run(todo, writer.write, lambda n: progress.advance(task, n))
    summary.seconds.update({f"media: {k}": v for k, v in stage.seconds.items()})
    summary.seconds["media"] = time.perf_counter() - t0


def _embed(opts, spec, wanted: set[str], progress, summary) -> None:
    from pipelines.embed_stage import EmbedStage
    from umbenet_cli.model.backbone import load_backbone

    t0 = time.perf_counter()
    table = features_dir(opts.out)
    if opts.force and table.exists():
        shutil.rmtree(table)
    have = table_spec(table)
    done = done_ids(table) if table.exists() else set()
    if (have is not None and not (wanted - done) and have.backbone == opts.model.backbone and have == CacheSpec(
            **{**spec.to_json(), **{k: getattr(have, k) for k in ("embed_dim", "backbone", "backbone_fingerprint")}})):
        # Every clip is embedded already, by this backbone: nothing to load, nothing to do.
        summary.embed_done_before = len(wanted)
        progress.add_task("embed", total=len(wanted), completed=len(wanted))
        summary.seconds["embed"] = time.perf_counter() - t0
        return
    backbone = load_backbone(opts.model.backbone)
    fspec = CacheSpec(**{**spec.to_json(), "embed_dim": backbone.dims.embed_dim,
                         "backbone": opts.model.backbone, "backbone_fingerprint": backbone.fingerprint()})
    if have is not None and have != fspec:
        if have.backbone_fingerprint != fspec.backbone_fingerprint:
            raise PrepError(f"{table} holds features of backbone {have.backbone!r} (weights fingerprint "
                            f"{have.backbone_fingerprint}); this run asks for {fspec.backbone!r} "
                            f"({fspec.backbone_fingerprint}), other weights. Fix: pass --force to re-embed (the "
                            f"media table is kept and reused), or use another --out.")
        # The same weights under another id (a hub id and a local copy): the id is a label, the
        # cache keeps the one it was started with.
        fspec = CacheSpec(**{**fspec.to_json(), "backbone": have.backbone})
        _check_spec(table, fspec, "features")
    todo = wanted - done
    summary.embed_done_before = len(wanted) - len(todo)
    stage = EmbedStage(backbone, opts.device, opts.embed_batch, opts.scene)
    notes = stage.notes()  # recorded in every features part this run writes
    progress.console.print(embed_line(notes), markup=False, highlight=False)
    task = progress.add_task("embed", total=len(wanted), completed=summary.embed_done_before)
    # Large parts read fast (finding 6), but a part is buffered whole before it is written: with
    # 8 s of audio per clip 512 rows were 131 MB plus their Arrow copy, the end-of-run peak of
    # prep's memory (finding 4). 64 MiB bounds the buffer; without audio parts hold 4,096 rows.
    with PartWriter(table, fspec, shard=opts.shard_name, rows_per_part=4096,
                    max_part_bytes=64 << 20, notes=notes) as writer:
        try:
            if todo:
                for part in iter_media(opts.out):
                    stage.run(part, todo, writer.write, lambda n: progress.advance(task, n))
        finally:
            stage.close()
    summary.seconds.update({f"embed: {k}": v for k, v in stage.seconds.items()})
    summary.seconds["embed"] = time.perf_counter() - t0


def embed_line(notes: dict[str, str]) -> str:
    """``embed: CLIP towers on cuda:0 (Tesla T4): image tower fp32 (...), text tower fp32``."""
    why = ""
    if notes["image_tower_precision"] == "fp32" and notes["embed_device"].startswith("cuda"):
        why = " (this GPU has no native bfloat16; as training does here)"
    return (f"embed: CLIP towers on {notes['embed_device']}: image tower {notes['image_tower_precision']}"
            f"{why}, text tower {notes['text_tower_precision']}")


def _tally(opts, records, summary) -> None:
    """Status counts of this shard's clips, from what the cache now holds."""
    from umbenet_cli.data.cache_io import read_media

    ids = {r.clip_id for r in records}
    media = read_media(opts.out, columns=[])
    meta = media.meta.select(["clip_id", "status", "status_reason"]).to_pydict()
    for cid, status, reason in zip(meta["clip_id"], meta["status"], meta["status_reason"]):
        if cid in ids:
            summary.status[status] += 1
            parts = [p.strip() for p in reason.split(";") if p.strip()]
            if status == "failed":
                summary.reasons[f"failed: {parts[0]}" if parts else "failed"] += 1
            for part in parts:  # notes (face ratio, trimmed audio) stay in the cache, not here
                if status == "partial" and part.split(":")[0] in ("video", "audio", "text"):
                    summary.reasons[f"missing {part.split(' (')[0]}"] += 1


def summary_table(summary: PrepSummary) -> Table:
    table = Table(title="prep summary", show_lines=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    for status in ("ok", "partial", "failed"):
        table.add_row(f"clips {status}", str(summary.status.get(status, 0)))
    table.add_row("clips reused from an earlier run (media / embed)",
                  f"{summary.media_done_before} / {summary.embed_done_before}")
    for reason, n in summary.reasons.most_common(8):
        table.add_row(f"  {reason}", str(n))
    for stage, s in summary.seconds.items():
        # Per-step times inside a stage add up over worker threads, so they can exceed the wall time.
        table.add_row(f"time {stage}" + (" (all workers)" if ": " in stage else ""), f"{s:.1f} s")
    return table


__all__ = ["PrepOptions", "PrepSummary", "read_features", "run_prep"]
