"""Where work runs and in what precision: the one resolver behind every command's ``--device``.

Spellings (``train``, ``eval``, ``predict``, ``prep``, ``info``)::

    cpu          the CPU
    cuda         GPU LOCAL_RANK under torchrun, else GPU 0
    cuda:N       GPU N of the GPUs this process sees (N counts inside CUDA_VISIBLE_DEVICES)
    --gpus 0,1   train only: exactly these GPUs (one process each, see training.distributed)

Every request is checked before any work starts; a machine that cannot satisfy it gives one
message (exit code 2) saying why: a torch build without CUDA, CUDA_VISIBLE_DEVICES hiding the
GPUs, no NVIDIA driver at all (no GPU, or a container started without one), or a driver older
than the torch build (only then: which torch to install instead). The driver is probed through
``libcuda``, the library torch itself loads (``driver_cuda_version``).

Precision: training runs its forward pass, and prep its frozen image tower, under autocast in
bfloat16 on GPUs that support it natively (compute capability 8.0+,
``torch.cuda.is_bf16_supported(including_emulation=False)``) and in float32 elsewhere (the CPU,
V100/T4-class GPUs: no float16 + GradScaler path, whose loss-scale state would have to travel in
checkpoints for a speed-up those cards rarely need at this model's size). Validation, ``eval``
and ``predict`` all run in float32 (``inference_precision``), so the validation UAR that picks the
best checkpoint is the one ``eval --split val`` reports.
"""
from __future__ import annotations

import contextlib
import os

import torch

from umbenet_cli.errors import UserError

# PyTorch's install guide: one wheel index per CUDA version. 12.6 runs on drivers >= 525 (CUDA
# minor-version compatibility) and still ships Pascal/Volta kernels; 13.x needs a driver >= 580.
INSTALL_HINT = ("install a torch built for your driver from PyTorch's wheel index, e.g. "
                "`pip install torch torchvision --index-url https://download.pytorch.org/whl/cu126` "
                "(CUDA 12.6: NVIDIA driver >= 525, GPUs from Pascal/V100 on) or .../whl/cu130 "
                "(CUDA 13.0: driver >= 580, Turing and newer); `nvidia-smi` shows the driver")


class DeviceError(UserError, ValueError):
    """A device request that this machine cannot satisfy."""


def torch_build() -> str:
    """``torch 2.14.1+cu130 (CUDA 13.0)`` or ``torch 2.6.0+cpu (CPU-only build)``."""
    cuda = torch.version.cuda
    return f"torch {torch.__version__} ({f'CUDA {cuda}' if cuda else 'CPU-only build'})"


def _load_libcuda():
    """The NVIDIA driver's user-space library (ctypes), or None where it cannot be loaded."""
    import ctypes
    import sys

    for name in (("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def driver_cuda_version() -> int | None:
    """The newest CUDA version the installed NVIDIA driver supports, as the driver API says it
    (``12040`` for 12.4; 0 when the library gives none), or None when there is no driver.

    The signal is ``libcuda``, the driver's own library that torch loads: where it cannot be
    loaded, no CUDA program can run, whatever else is there. ``/proc/driver/nvidia`` shows the
    host's kernel module also inside a container started without GPUs, and is Linux-only;
    ``nvidia-smi`` is missing from many images that have the driver and costs a process. Only
    ``libcuda`` also gives the driver's CUDA version, to compare with the torch build's
    (``cuDriverGetVersion`` needs no GPU and no ``cuInit``)."""
    import ctypes

    lib = _load_libcuda()
    if lib is None:
        return None
    version = ctypes.c_int(0)
    try:
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return 0
    except AttributeError:  # a library by that name without the driver API: a broken install
        return 0
    return int(version.value)


def _cuda_version_text(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def _build_cuda_version() -> int | None:
    """torch's CUDA build as the driver API counts it: "13.0" -> 13000."""
    try:
        major, minor = (torch.version.cuda or "").split(".")[:2]
        return int(major) * 1000 + int(minor) * 10
    except ValueError:
        return None


def no_cuda_message(request: str) -> str:
    """Why ``request`` (e.g. ``--device cuda``) cannot run here and what to do about it. The advice
    to install another torch build comes only where it helps: a CPU-only build, or a driver older
    than the build needs."""
    use_cpu = "Use --device cpu"
    if not torch.version.cuda and not getattr(torch.version, "hip", None):
        return (f"{request}: no CUDA device is usable: the installed {torch_build()} has no GPU support. "
                f"{use_cpu}, or {INSTALL_HINT}.")
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return (f"{request}: no CUDA device is usable: CUDA_VISIBLE_DEVICES="
                f"{os.environ['CUDA_VISIBLE_DEVICES']!r} hides every GPU. {use_cpu}, or unset it (or list the "
                f"GPUs to use, e.g. CUDA_VISIBLE_DEVICES=0).")
    if not torch.version.cuda:  # a ROCm build: no NVIDIA driver to ask
        return f"{request}: no GPU is usable: the installed {torch_build()} sees none. {use_cpu}."
    driver, build = driver_cuda_version(), _build_cuda_version()
    if driver is None:
        return (f"{request}: no CUDA device is usable: this machine has no NVIDIA GPU (no NVIDIA driver: its "
                f"library libcuda cannot be loaded), or it runs in a container started without one (e.g. "
                f"`docker run --gpus all`). {use_cpu}.")
    if driver and build and driver < build:
        return (f"{request}: no CUDA device is usable: the NVIDIA driver supports CUDA up to "
                f"{_cuda_version_text(driver)}, older than the installed {torch_build()}. {use_cpu}, update "
                f"the driver, or {INSTALL_HINT}.")
    found = f" (supports CUDA {_cuda_version_text(driver)})" if driver else ""
    return (f"{request}: no CUDA device is usable: the NVIDIA driver is installed{found} but CUDA finds no "
            f"usable GPU; `nvidia-smi` shows what the driver sees (after a driver update without a reboot it "
            f"says 'Driver/library version mismatch'). {use_cpu}.")


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _under_launcher() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def parse_gpus(text: str | None) -> list[int]:
    """``"0,1"`` -> [0, 1]; the exact GPUs to use, each once (not yet checked against the machine)."""
    if text is None or text.strip() == "":
        return []
    try:
        ids = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise DeviceError(f"--gpus {text!r}: give GPU indices separated by commas, e.g. --gpus 0,1") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise DeviceError(f"--gpus {text!r}: indices must be distinct and >= 0, e.g. --gpus 0,1")
    return ids


def check_gpus(ids: list[int], request: str | None = None) -> None:
    """Every index in ``ids`` names a GPU this process sees."""
    if not ids:
        return
    request = request or f"--gpus {','.join(map(str, ids))}"
    if not torch.cuda.is_available():
        raise DeviceError(no_cuda_message(request))
    n = torch.cuda.device_count()
    bad = [i for i in ids if i >= n]
    if bad:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f" (CUDA_VISIBLE_DEVICES={mask} shows this process {n})" if mask is not None else ""
        raise DeviceError(f"{request}: GPU(s) {bad} do not exist; this machine has {n} (0..{n - 1}){seen}")


def visible_mask(ids: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for child processes that must see exactly GPUs ``ids`` of this one.

    ``ids`` count inside the current mask: under a scheduler's ``CUDA_VISIBLE_DEVICES=2,3``,
    ``--gpus 0,1`` means physical GPUs 2 and 3 (entries may also be UUIDs or MIG ids)."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return ",".join(map(str, ids))
    visible = [v.strip() for v in mask.split(",") if v.strip() != ""]
    return ",".join(visible[i] for i in ids)


def resolve_device(spec: str | None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` -> a torch.device with an index, checked on this machine.

    ``cuda`` takes LOCAL_RANK (under torchrun) or 0. Raises DeviceError (exit code 2) when the
    spelling is wrong, CUDA is unusable here, or N is out of range."""
    text = (spec or "cpu").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda":
        index = _local_rank()
    elif text.startswith("cuda:") and text[5:].isdigit():
        index = int(text[5:])
        if _under_launcher() and index != _local_rank():
            raise DeviceError(f"--device {spec}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                              f"pass --device cuda (or --gpus to pick the GPUs)")
    else:
        raise DeviceError(f"--device {spec!r}: use cpu, cuda or cuda:N (N counts the GPUs this process sees)")
    check_gpus([index], request=f"--device {spec}")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """One line for a run's header: ``cuda:0 (NVIDIA H100, bf16 autocast)`` or ``cpu (8 threads, fp32)``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{device} ({name}, {precision_name(device)}; {torch_build()})"
    return f"cpu ({torch.get_num_threads()} threads, {precision_name(device)})"


def cuda_unused_note(device: torch.device) -> str | None:
    """A one-line note when a GPU is there but the command runs on the CPU."""
    if device.type == "cpu" and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"note: {n} CUDA GPU(s) available but this runs on the CPU; pass --device cuda to use one"
    return None


# ----------------------------------------------------------------------------------- precision
def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device`` (training's forward pass, prep's image tower), or None
    for plain float32: bfloat16 only where the GPU has it natively, never emulated (V100, T4).
    Asks ``device``'s own GPU (``cuda:1`` on a mixed box), not the process's current one, which
    is what ``torch.cuda.is_bf16_supported`` asks."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    if torch.version.hip:  # ROCm: every architecture it supports has bfloat16
        return torch.bfloat16
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.bfloat16 if torch.cuda.get_device_properties(index).major >= 8 else None


def precision_name(device: torch.device) -> str:
    """``bf16 autocast`` or ``fp32``: what ``autocast_precision`` runs ``device`` in."""
    dtype = autocast_dtype(device)
    return "bf16 autocast" if dtype is torch.bfloat16 else "fp32"


def autocast_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """The context of a training forward pass and of prep's image tower (autocast where
    ``autocast_dtype`` says so, disabled elsewhere)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


train_precision = autocast_precision  # the name the training loop uses


def inference_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Validation, eval and predict: float32 everywhere, even inside an outer autocast region."""
    return torch.autocast(device.type, enabled=False)
