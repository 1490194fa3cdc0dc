"""One training stage: epochs of steps, validation, checkpoints, resume (the mechanics).

What a stage presents, how it starts and when it stops (paper section 3.4 and the schedule of
4.1) are decided in ``training.two_stage``; this module carries them out.

A stage writes into its own folder::

    metrics.jsonl            one line per epoch: loss parts, lr, train and validation UAR/WAR,
                             prompt selection counts, steps/s and clips/s
    checkpoints/last/        weights + train_state.pt (optimiser, scheduler, RNG, counters)
    checkpoints/best/        the epoch with the best validation UAR (ties: WAR)
    result.json              written when the stage ends, with why it ended and how it validated

Validation (``validate``): every clip with all its modalities, except in a unimodal stage (stage 1)
under ``optim.stage1_val = "unimodal"``: there each clip is validated with each of its modalities
alone, as stage 1 trains, and the epoch's loss, UAR and WAR are the means over the modalities
(the per-modality numbers are in metrics.jsonl).

Resuming loads ``checkpoints/last`` and continues at the exact step; since batches and modality
draws are functions of (seed, stage, epoch, step) and the RNG state travels in the checkpoint, a
resumed CPU run ends with the same weights and metrics as an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.evaluation import metrics as M
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.model.checkpoint import load_weights, save_checkpoint
from umbenet_cli.model.umbenet import UMBEnet
from umbenet_cli.devices import inference_precision, train_precision
from umbenet_cli.reporting.collect import read_metrics
from umbenet_cli.training.data import Splits, epoch_order, make_batch, step_rng, upload
from umbenet_cli.training.distributed import DistInfo, all_reduce_sum_, barrier, broadcast_object
from umbenet_cli.training.options import TrainError
from umbenet_cli.training.tracking import Tracker
from umbenet_cli.training.two_stage import STAGE_IDS, make_optimizer, make_scheduler, sample_presence, stop_reason

log = logging.getLogger(__name__)
SHOW_LOSS_EVERY = 25  # steps between loss updates of the progress bar (each one a host sync)
LOSS_PARTS = ("total", "ce", "l1", "gate_l1", "key")
# Stops that a raised limit lifts (``umbenet train --resume --set optim.max_epochs=N``).
MAX_EPOCHS_STOP, MAX_STEPS_STOP = "reached max_epochs", "reached max_steps"


@dataclass
class StageState:
    """Everything besides weights that a resumed stage needs."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: tuple[float, float] = (-1.0, -1.0)  # (val UAR, val WAR) of checkpoints/best
    best_epoch: int = -1
    sums: dict = field(default_factory=dict)  # running sums of the current epoch
    stop_reason: str | None = None


@torch.no_grad()
def predict_rows(model: UMBEnet, table: FeatureTable, rows: np.ndarray, present: np.ndarray,
                 device: torch.device, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, C] and selected prompts [N, k] (-1 without a pool) of ``rows``, in eval mode."""
    was = model.training
    model.eval()
    logits, selected = [], []
    for s in range(0, len(rows), batch_size):
        b = make_batch(table, rows[s:s + batch_size], present[s:s + batch_size], device)
        with inference_precision(device):  # as eval and predict: float32 everywhere
            out = model(b)
        logits.append(out.logits.float().cpu())
        k = out.selected if out.selected is not None else torch.full((len(b.present), 1), -1)
        selected.append(k.cpu())
    model.train(was)
    return torch.cat(logits).numpy(), torch.cat(selected).numpy()


def evaluate(model, table, rows, available, device, batch_size) -> dict:
    logits, _ = predict_rows(model, table, rows, available[rows], device, batch_size)
    labels = table.labels[rows].astype(np.int64)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    cm = M.confusion_matrix(labels, logits.argmax(1), logits.shape[1])
    return {"loss": loss, "uar": M.uar(cm), "war": M.war(cm), "n": int(len(rows))}


VAL_RULES = {
    "all": "each validation clip with all its modalities together",
    "unimodal": "each validation clip with each of its modalities alone: best checkpoint by the mean over "
                "modalities of their UAR (then WAR), lr schedule by the mean of their losses",
}


def validate(model, table, rows, available, device, batch_size, rule: str) -> dict:
    """One epoch's validation under ``rule`` (``VAL_RULES``): loss, uar, war, n, rule, and for
    "unimodal" ``per_modality`` (``evaluate`` of each modality's clips, that modality alone)."""
    if rule == "all":
        return {**evaluate(model, table, rows, available, device, batch_size), "rule": rule}
    per = {}
    for j, m in enumerate(MODALITIES):
        have = rows[available[rows, j]]
        if len(have):
            alone = np.zeros_like(available)
            alone[:, j] = available[:, j]
            per[m] = evaluate(model, table, have, alone, device, batch_size)
    means = {k: float(np.mean([v[k] for v in per.values()])) for k in ("loss", "uar", "war")}
    return {**means, "n": int(len(rows)), "rule": rule, "per_modality": per}


def load_train_state(path: Path, device: torch.device) -> dict:
    """``train_state.pt`` onto this rank's ``device``; tensors and plain values only (weights_only):
    a file that would run code when unpickled is refused, never executed."""
    import pickle

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"{path} holds more than tensors and plain values, so loading it could run code; "
                         f"refused ({first[:200]}). Resume only from checkpoints written by `umbenet train`, "
                         f"or delete {path.parent} to restart that stage from its last complete state") from None


class StageTrainer:
    def __init__(self, model: UMBEnet, table: FeatureTable, splits: Splits, available: np.ndarray,
                 mode: str, stage: str, folder: Path, seed: int, info: DistInfo,
                 save_every: int = 0, max_steps: int | None = None) -> None:
        self.model, self.table, self.splits = model, table, splits
        self.available, self.mode, self.stage, self.folder = available, mode, stage, folder
        self.seed, self.info, self.save_every, self.max_steps = seed, info, save_every, max_steps
        self.cfg = model.config.optim
        self.val_rule = self.cfg.stage1_val if mode == "unimodal" else "all"
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = make_optimizer(params, self.cfg)
        self.sched = make_scheduler(self.opt, self.cfg)
        self.state = StageState()
        self._acc: torch.Tensor | None = None  # the epoch's running sums on the device (_sums)
        self.console = None  # set by the caller to print one line per epoch
        self.tracker = Tracker()  # TensorBoard / W&B (training.tracking), set by the caller
        self.net = model
        if info.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Selection counts are summed across ranks by hand every step (below), not broadcast.
            with warnings.catch_warnings():  # torch 2.14 renames it; the old name works from 2.6 on
                warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
                self.net = DDP(model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                               broadcast_buffers=False)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, name: str) -> None:
        """Every rank calls it at the same points; rank 0 writes."""
        if self.state.step_in_epoch:  # mid-epoch: the running sums of all ranks travel as plain floats
            sums = self._sums().clone()
            if self.info.world > 1:  # each rank holds its share's; rank 0 alone would record half
                all_reduce_sum_(sums, self.info)
            self.state.sums = dict(zip(self._sum_keys(), sums.tolist()))
        if not self.info.main:
            return
        state = {
            "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
            "torch_rng": torch.get_rng_state(), "state": self.state.__dict__,
        }
        if self.info.device.type == "cuda":  # dropout on the GPU draws from the GPU's generator
            state["cuda_rng"] = torch.cuda.get_rng_state(self.info.device)
        save_checkpoint(self.model, self.folder / "checkpoints" / name,
                        extra={"stage": self.stage, "epoch": self.state.epoch, "global_step": self.state.global_step},
                        write_extra=lambda tmp: torch.save(state, tmp / "train_state.pt"))

    def resume(self) -> bool:
        """Continue from checkpoints/last if it exists; True when it did."""
        last = self.folder / "checkpoints" / "last"
        # Rank 0's view decides: every rank resumes, or none does.
        if not broadcast_object((last / "train_state.pt").is_file(), self.info):
            return False
        load_weights(self.model, last, map_location=self.info.device)
        st = load_train_state(last / "train_state.pt", self.info.device)
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        torch.set_rng_state(st["torch_rng"].cpu())
        if self.info.device.type == "cuda" and "cuda_rng" in st:
            torch.cuda.set_rng_state(st["cuda_rng"].cpu(), self.info.device)
        self.state = StageState(**st["state"])
        self.state.best = tuple(self.state.best)
        if not self.info.main:  # the epoch's sums so far are every rank's: rank 0 carries them on
            self.state.sums = {}
        if (self.state.stop_reason or "").startswith(MAX_STEPS_STOP):
            self.state.stop_reason = None  # the limit is checked again below, perhaps a raised one
        self._acc = None  # rebuilt from the restored sums
        # Drop metric lines written after that checkpoint (a kill between the two writes). An
        # epoch's line is covered once the checkpoint counts the epoch as done: a `--save-every`
        # checkpoint taken after the epoch's last step has its global step but not its end, and
        # the resume writes that line again. A partial epoch's line (a step limit) is covered by
        # the checkpoint at its step.
        st = self.state
        metrics = self.folder / "metrics.jsonl"
        if metrics.exists() and self.info.main:
            keep = [m for m in read_metrics(self.folder)  # a torn last line goes too
                    if m["epoch"] <= st.epoch or (m.get("partial_epoch") and m["global_step"] <= st.global_step)]
            metrics.write_text("".join(json.dumps(m) + "\n" for m in keep))
        return True

    # ------------------------------------------------------------------------ steps
    def _sum_keys(self) -> tuple[str, ...]:
        """What ``_step`` adds up over an epoch: loss parts x clips, clips, the confusion counts."""
        C = len(self.model.config.classes)
        return (*LOSS_PARTS, "n", *(f"cm{i}" for i in range(C * C)))

    def _sums(self) -> torch.Tensor:
        """The epoch's running sums, kept on the device (no host sync per step) [len(_sum_keys())]."""
        if self._acc is None:
            self._acc = torch.tensor([self.state.sums.get(k, 0.0) for k in self._sum_keys()],
                                     dtype=torch.float64).to(self.info.device)
        return self._acc

    def _step(self, rows: np.ndarray, present: np.ndarray) -> torch.Tensor:
        """One optimiser step on this rank's share of ``rows``; returns its sums (on the device)."""
        info = self.info
        per = len(rows) // info.world
        mine = slice(info.rank * per, (info.rank + 1) * per)
        batch = make_batch(self.table, rows[mine], present[mine], info.device)
        labels = upload(self.table.labels[rows[mine]].astype(np.int64), info.device)
        pool = self.model.pool
        counters = pool.counters() if pool is not None else []
        before = [c.clone() for c in counters]
        with train_precision(info.device):
            out = self.net(batch)
            parts = self.model.loss(out, labels)
        self.opt.zero_grad(set_to_none=True)
        parts.total.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.cfg.grad_clip)
        self.opt.step()
        if counters and info.world > 1:
            with torch.no_grad():
                for c, b in zip(counters, before):
                    c.copy_(b + all_reduce_sum_(c - b, info))
        with torch.no_grad():  # everything stays on the device: the host syncs once per epoch
            n, C = len(labels), out.logits.shape[1]
            losses = torch.stack([getattr(parts, k).detach().double() for k in LOSS_PARTS]) * n
            cm = losses.new_zeros(C * C).index_add_(0, labels * C + out.logits.detach().argmax(1),
                                                     losses.new_ones(n))
            return torch.cat([losses, losses.new_full((1,), n), cm])

    def _batches(self, epoch: int) -> np.ndarray:
        order = epoch_order(self.splits.train, self.seed, STAGE_IDS[self.stage], epoch)
        B = self.cfg.batch_size
        if B % self.info.world:
            raise ValueError(f"optim.batch_size={B} is not divisible by {self.info.world} processes")
        if len(order) < B:
            raise ValueError(f"only {len(order)} training clips, fewer than optim.batch_size={B}")
        return order[: len(order) // B * B].reshape(-1, B)

    # ------------------------------------------------------------------------ epochs
    def run(self, progress=None) -> dict:
        st, cfg, info = self.state, self.cfg, self.info
        self.model.train()
        task = None
        epochs = progress.add_task(f"{self.stage} epochs", total=cfg.max_epochs, completed=st.epoch) if progress else None
        while st.stop_reason is None:
            if st.epoch >= cfg.max_epochs:
                st.stop_reason = f"{MAX_EPOCHS_STOP}={cfg.max_epochs}"
                break
            if self.max_steps is not None and st.global_step >= self.max_steps:
                st.stop_reason = f"{MAX_STEPS_STOP}={self.max_steps}"
                break
            batches = self._batches(st.epoch)
            if progress is not None:
                task = progress.add_task(f"{self.stage} epoch {st.epoch + 1}", total=len(batches), completed=st.step_in_epoch)
            t0 = time.perf_counter()
            steps_done = 0
            for step in range(st.step_in_epoch, len(batches)):
                rows = batches[step]
                present = sample_presence(self.available[rows], self.mode,
                                          step_rng(self.seed, STAGE_IDS[self.stage], st.epoch, step + 1))
                stats = self._step(rows, present)
                self._sums().add_(stats)
                st.step_in_epoch, st.global_step = step + 1, st.global_step + 1
                if type(self.tracker) is not Tracker:  # per-step curves: one host sync (tolist) a step
                    means = (stats[:len(LOSS_PARTS)] / stats[len(LOSS_PARTS)]).tolist()
                    self.tracker.step(st.global_step, dict(zip(LOSS_PARTS, means)), self.opt.param_groups[0]["lr"])
                steps_done += 1
                if progress is not None:
                    # The shown loss costs a host sync: every SHOW_LOSS_EVERY steps, on rank 0 only.
                    if info.main and (steps_done == 1 or steps_done % SHOW_LOSS_EVERY == 0):
                        loss = float(stats[0] / stats[len(LOSS_PARTS)])
                        progress.update(task, description=f"{self.stage} epoch {st.epoch + 1} loss {loss:.3f}")
                    progress.update(task, advance=1)
                if self.save_every and st.global_step % self.save_every == 0:
                    self._save("last")
                if self.max_steps is not None and st.global_step >= self.max_steps:
                    st.stop_reason = f"{MAX_STEPS_STOP}={self.max_steps}"
                    break
            seconds = time.perf_counter() - t0
            if progress is not None:
                progress.remove_task(task)
            if st.step_in_epoch < len(batches) and st.stop_reason is not None:
                self._end_epoch(seconds, steps_done, partial=True)
                break
            self._end_epoch(seconds, steps_done)
            if progress is not None:
                progress.update(epochs, completed=st.epoch)
        result = {"stage": self.stage, "stop_reason": st.stop_reason, "epochs": st.epoch,
                  "global_step": st.global_step, "best_epoch": st.best_epoch,
                  "best_val_uar": st.best[0], "best_val_war": st.best[1],
                  "val_rule": self.val_rule, "val_rule_detail": VAL_RULES[self.val_rule]}
        if info.main:
            (self.folder / "result.json").write_text(json.dumps(result, indent=2))
        barrier(info)  # rank 0's checkpoints and result.json exist before any rank reads them
        return result

    def _end_epoch(self, seconds: float, steps: int, partial: bool = False) -> None:
        st, cfg, info = self.state, self.cfg, self.info
        C = len(self.model.config.classes)
        sums = all_reduce_sum_(self._sums().clone(), info).cpu().numpy()  # the epoch's one host sync
        n = max(sums[len(LOSS_PARTS)], 1.0)
        train = {k: float(sums[i] / n) for i, k in enumerate(LOSS_PARTS)}
        cm = sums[len(LOSS_PARTS) + 1:].reshape(C, C).astype(np.int64)
        # The whole epoch's matrix, scored by evaluation.metrics (an epoch cut before its first step has none).
        train["uar"], train["acc"] = (M.uar(cm), M.war(cm)) if cm.sum() else (0.0, 0.0)
        train["war"] = train["acc"]
        # Rank 0 validates and every rank takes its numbers: the schedule, best and stop decisions
        # below then agree on all ranks (they would drift apart on per-rank round-off otherwise).
        val = validate(self.model, self.table, self.splits.val, self.available, info.device,
                       cfg.batch_size, self.val_rule) if info.main else None
        val = broadcast_object(val, info)
        if not partial:
            self.sched.step(val["loss"])
        lr = self.opt.param_groups[0]["lr"]
        pool = self.model.pool
        line = {
            "stage": self.stage, "epoch": st.epoch + 1, "global_step": st.global_step, "lr": lr,
            "train": train, "val": val, "partial_epoch": partial,
            "pool_counts": pool.counts.tolist() if pool is not None else None,
            "seconds": seconds, "steps_per_s": steps / seconds if seconds else 0.0,
            "clips_per_s": steps * cfg.batch_size / seconds if seconds else 0.0,
        }
        if info.main:
            with open(self.folder / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")
            self.tracker.epoch(line)
        if (val["uar"], val["war"]) > tuple(st.best):
            st.best, st.best_epoch = (val["uar"], val["war"]), st.epoch + 1
            self._save("best")
        st.epoch += 0 if partial else 1
        st.step_in_epoch = 0 if not partial else st.step_in_epoch
        st.sums = {}
        self._sums().zero_()
        if st.stop_reason is None:
            st.stop_reason = stop_reason(lr, train["acc"], cfg)
        st.stop_reason = broadcast_object(st.stop_reason, info)  # rank 0's decision
        self._save("last")
        msg = (f"{self.stage} epoch {line['epoch']}: train loss {train['total']:.4f} UAR {100 * train['uar']:.2f}% "
               f"WAR {100 * train['war']:.2f}% | val{' (modalities alone, mean)' if self.val_rule == 'unimodal' else ''} loss {val['loss']:.4f} UAR {100 * val['uar']:.2f}% WAR {100 * val['war']:.2f}% "
               f"| lr {lr:.2e} | {line['steps_per_s']:.1f} steps/s, {line['clips_per_s']:.0f} clips/s")
        log.info(msg)
        if self.console is not None and info.main:
            self.console.print(msg, highlight=False)
