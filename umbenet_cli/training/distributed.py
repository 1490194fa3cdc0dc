"""The one place that knows about processes: torchrun environment, process group, launching.

``umbenet train --gpus 0,1`` re-launches itself through torch.distributed's launcher
(``python -m torch.distributed.run``) with one process per GPU; under torchrun (or Slurm with
torchrun) the environment variables RANK / WORLD_SIZE / LOCAL_RANK are already set and are used
as they are. ``--nproc N --device cpu`` runs N processes on the gloo backend, so the distributed
path is exercised on machines without GPUs (and in the tests).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from umbenet_cli.errors import UserError

LAUNCHED_ENV = "UMBENET_LAUNCHED"


class DeviceError(UserError, ValueError):
    """A device request that this machine cannot satisfy."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def parse_gpus(text: str | None) -> list[int]:
    """``"0,1"`` -> [0, 1]; the exact GPUs to use, each once."""
    if text is None or text.strip() == "":
        return []
    try:
        ids = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise DeviceError(f"--gpus {text!r}: give GPU indices separated by commas, e.g. --gpus 0,1") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise DeviceError(f"--gpus {text!r}: indices must be distinct and >= 0, e.g. --gpus 0,1")
    return ids


def check_gpus(ids: list[int]) -> None:
    if not ids:
        return
    if not torch.cuda.is_available():
        raise DeviceError(f"--gpus {','.join(map(str, ids))}: no CUDA device is visible here; use --device cpu")
    n = torch.cuda.device_count()
    bad = [i for i in ids if i >= n]
    if bad:
        raise DeviceError(f"--gpus: GPU(s) {bad} do not exist; this machine has {n} (0..{n - 1})")


def under_launcher() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


# Options that only the launching process needs; torchrun's own parser would also misread some
# of them (argparse matches --nproc against --nproc-per-node).
_LAUNCH_OPTIONS = {"--gpus": 1, "--nproc": 1, "--nnodes": 1, "--node-rank": 1, "--master-addr": 1,
                   "--master-port": 1}


def worker_argv(argv: list[str], gpus: list[int]) -> list[str]:
    """``argv`` without the launch options (``--opt value`` and ``--opt=value`` forms)."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in _LAUNCH_OPTIONS:
            skip = 0 if "=" in arg else _LAUNCH_OPTIONS[name]
            continue
        out.append(arg)
    return out + (["--device", "cuda"] if gpus else [])


def relaunch(argv: list[str], nproc: int, gpus: list[int], nnodes: int = 1, node_rank: int = 0,
             master_addr: str = "127.0.0.1", master_port: int = 29511) -> int:
    """Run ``umbenet <argv>`` under torch.distributed.run with ``nproc`` processes per node."""
    argv = worker_argv(argv, gpus)
    env = dict(os.environ)
    env[LAUNCHED_ENV] = "1"
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--nnodes={nnodes}", f"--node_rank={node_rank}", f"--master_addr={master_addr}",
           f"--master_port={master_port}", "-m", "umbenet_cli.cli", *argv]
    return subprocess.call(cmd, env=env)


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun; pick this process's device."""
    if not under_launcher():
        dev = torch.device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistInfo(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local, device=dev)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (used to agree on errors and stop decisions)."""
    if info.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
