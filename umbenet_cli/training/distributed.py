"""The one place that knows about processes: torchrun environment, process group, launching.

``umbenet train --gpus 0,1`` re-launches itself through torch.distributed's launcher (torchrun's
``run``, in this process) with one process per GPU; under torchrun (or Slurm with torchrun) the
environment variables RANK / WORLD_SIZE / LOCAL_RANK are already set and are used as they are.
``--nproc N --device cpu`` runs N processes on the gloo backend, so the distributed path is
exercised on machines without GPUs (and in the tests).

Only rank 0 writes files. Every hand-over between ranks waits for it (``barrier``): the end of a
stage (stage 1 -> stage 2 reads its checkpoint, the next fold, the summary, a later ``eval``).
Decisions that depend on one rank's numbers (validation, the plateau schedule, stopping, resume)
are taken on rank 0 and broadcast (``broadcast_object``), so ranks cannot part ways.

When one process fails, it prints its own message; torchrun stops the others; the ones that
notice the lost peer first say so in one line (``peer_failure``); the launching process prints
one line naming the process that failed and exits with its code, without torchrun's traceback.

Ctrl-C reaches the launching process alone (torchrun starts each worker in a session of its own);
torchrun passes it on to the workers, which stop without a word, and the launcher prints the one
"interrupted" line and exits 130. Workers end with their launcher however it ends: each asks the
kernel for SIGKILL when its parent dies (``die_with_launcher``), so a ``kill -9`` of the launcher
leaves no process writing into the run.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from dataclasses import dataclass

import torch
import torch.distributed as dist

from umbenet_cli.devices import DeviceError, check_gpus, parse_gpus, resolve_device, visible_mask

__all__ = ["DeviceError", "DistInfo", "check_gpus", "parse_gpus", "setup", "relaunch", "worker_argv",
           "barrier", "broadcast_object", "all_reduce_sum_", "cleanup", "under_launcher", "peer_failure",
           "die_with_launcher"]

LAUNCHED_ENV = "UMBENET_LAUNCHED"
LAUNCHER_PID_ENV = "UMBENET_LAUNCHER_PID"  # the process whose death ends the workers


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def under_launcher() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


# Options that only the launching process needs; torchrun's own parser would also misread some
# of them (argparse matches --nproc against --nproc-per-node). --device is replaced by the
# resolved one.
_LAUNCH_OPTIONS = {"--gpus": 1, "--nproc": 1, "--nnodes": 1, "--node-rank": 1, "--master-addr": 1,
                   "--master-port": 1, "--device": 1}


def worker_argv(argv: list[str], gpus: list[int]) -> list[str]:
    """``argv`` without the launch options (``--opt value`` and ``--opt=value`` forms), ending in
    the device each worker resolves for itself: ``cuda`` (its LOCAL_RANK's GPU) or ``cpu``."""
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
    return out + ["--device", "cuda" if gpus else "cpu"]


def launch_args(argv: list[str], nproc: int, gpus: list[int], nnodes: int = 1, node_rank: int = 0,
                master_addr: str = "127.0.0.1", master_port: int = 29511) -> list[str]:
    """torchrun's command line for ``umbenet <argv>``: one node rendezvous on a free port
    (``--standalone``), several nodes at ``master_addr:master_port``."""
    where = (["--standalone"] if nnodes == 1 else
             [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={master_addr}",
              f"--master-port={master_port}"])
    return [f"--nproc-per-node={nproc}", *where, "--max-restarts=0", "-m", "umbenet_cli.cli",
            *worker_argv(argv, gpus)]


def relaunch(argv: list[str], nproc: int, gpus: list[int], nnodes: int = 1, node_rank: int = 0,
             master_addr: str = "127.0.0.1", master_port: int = 29511, console=None) -> int:
    """Run ``umbenet <argv>`` under torchrun with ``nproc`` processes per node; its exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ[LAUNCHED_ENV] = "1"
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_mask(gpus)
    # torchrun's agent logs each worker's failure with a traceback of the launcher itself; the
    # worker has printed its own message already, and one line below says which one failed.
    # torchrun's modules set their own levels (LOGLEVEL), so the parent's level alone does not do.
    for name in ["torch.distributed.elastic", "torch.distributed.run", *logging.root.manager.loggerDict]:
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = parse_args(launch_args(argv, nproc, gpus, nnodes, node_rank, master_addr, master_port))
    if nnodes == 1:
        args.rdzv_id = str(uuid.uuid4())
    handlers = {sig: signal.getsignal(sig) for sig in _AGENT_SIGNALS}
    try:
        run(args)
    except SignalException as exc:
        # Ctrl-C (or a kill) of this process: torchrun has stopped the workers with the same signal.
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        rank, failure = first_failure(exc.failures)
        code = failure.exitcode
        how = f"exit code {code}" if code >= 0 else f"signal {-code}"
        msg = (f"training process {rank} of {nproc * nnodes} failed ({how}; its message is above); "
               f"the others were stopped")
        print(f"error: {msg}", file=sys.stderr) if console is None else console.print(f"[bold red]error:[/] {msg}", highlight=False)
        return code if code > 0 else 1
    finally:  # torchrun's handlers raise its SignalException: not after the workers are gone
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0


# The signals torchrun's agent turns into a SignalException (TORCHELASTIC_SIGNALS_TO_HANDLE).
_AGENT_SIGNALS = tuple(getattr(signal, s) for s in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT") if hasattr(signal, s))


def die_with_launcher(expected: int | None = None) -> None:
    """In a worker: end this process (SIGKILL) as soon as the process that launched it dies, so
    that no checkpoint or metrics line is written once the user's command is gone (``kill -9``
    of the launcher; torchrun's own clean-up does not run then).

    Linux: the kernel's parent-death signal (prctl PR_SET_PDEATHSIG). Elsewhere: a thread that
    checks every second whether the parent is still there. The launcher may already be gone when
    this runs: the parent pid is compared with the one the launcher recorded (``expected``, else
    ``UMBENET_LAUNCHER_PID``, else the parent now)."""
    expected = expected or int(os.environ.get(LAUNCHER_PID_ENV) or os.getppid())
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
            if os.getppid() != expected:  # died before the request: the kernel will not signal
                os._exit(1)
            return
    import threading
    import time

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="umbenet-launcher-watch", daemon=True).start()


# Signals torchrun's agent sends to stop the other workers once one has failed.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGKILL)


def first_failure(failures: dict):
    """(rank, failure) of the process that failed on its own (an exit code > 0, or a signal of its
    own such as SIGABRT or SIGSEGV), not one torchrun then stopped with SIGTERM / SIGKILL; the
    earliest of those, then the lowest rank. torchrun stamps failures in whole seconds, so a
    worker it stopped can carry the same time as the one that failed: the time alone cannot tell."""
    def stopped(f) -> bool:
        return f.exitcode == 0 or (f.exitcode < 0 and -f.exitcode in STOP_SIGNALS)
    return min(failures.items(), key=lambda kv: (stopped(kv[1]), kv[1].timestamp, kv[0]))


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun; resolve this process's device."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not under_launcher():
        return DistInfo(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", **kwargs)
    return DistInfo(rank=rank, world=world, local_rank=local, device=dev)


def cleanup(info: DistInfo | None = None, finished: bool = False) -> None:
    """Leave the process group. After a run every rank finished, the ranks first wait for each
    other, so that none tears its connections down while another still has work (rank 0 prints the
    summary after the last collective); after a failure there is no wait: the failing rank's
    peers are stopped by the launcher."""
    if dist.is_initialized():
        if finished and info is not None:
            barrier(info)
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Every rank waits here until all have arrived (after rank 0's writes, before others read)."""
    if info.world > 1:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (decisions: validation, schedule, stopping, resume)."""
    if info.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=info.device if info.device.type == "cuda" else None)
    return box[0]


def peer_failure(exc: BaseException) -> bool:
    """True for the error a collective raises when another process has gone away."""
    if not under_launcher() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                            "NCCL communicator was aborted", "ProcessGroupNCCL", "Gloo"))
