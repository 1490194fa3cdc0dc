"""The one device resolver: every spelling, on a machine with and without GPUs (torch.cuda patched)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from umbenet_cli import devices
from umbenet_cli.devices import DeviceError, check_gpus, parse_gpus, resolve_device, visible_mask


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA GPUs (0: a CUDA build that sees none)."""
    def have(n: int, bf16: bool = True, majors: list[int] | None = None):
        """``majors``: each GPU's compute capability major (8+: native bfloat16); current device 0."""
        majors = majors or [8 if bf16 else 7] * n
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda i=None: SimpleNamespace(major=majors[0 if i is None else int(getattr(i, "index", i) or 0)]))
    for var in ("LOCAL_RANK", "WORLD_SIZE", "RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    return have


def test_every_spelling(gpus, monkeypatch):
    gpus(2)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda", 0)  # an index, always: set_device needs one
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)  # under torchrun: this process's GPU


@pytest.mark.parametrize("spec", ["cuda:2", "cuda:7"])
def test_index_out_of_range(gpus, spec):
    gpus(2)
    with pytest.raises(DeviceError, match=r"do not exist; this machine has 2 \(0..1\)"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps0", "cuda0"])
def test_bad_spelling(gpus, spec):
    gpus(1)
    with pytest.raises(DeviceError, match="use cpu, cuda or cuda:N"):
        resolve_device(spec)


class FakeLibcuda:
    """The driver API as far as ``driver_cuda_version`` calls it."""

    def __init__(self, version: int, status: int = 0) -> None:
        self.version, self.status = version, status

    def cuDriverGetVersion(self, out) -> int:  # noqa: N802 (the driver API's name)
        out._obj.value = self.version  # out: ctypes.byref(c_int)
        return self.status


def test_driver_version_from_libcuda(monkeypatch):
    monkeypatch.setattr(devices, "_load_libcuda", lambda: None)
    assert devices.driver_cuda_version() is None  # no driver library: no driver
    monkeypatch.setattr(devices, "_load_libcuda", lambda: FakeLibcuda(12040))
    assert devices.driver_cuda_version() == 12040
    monkeypatch.setattr(devices, "_load_libcuda", lambda: FakeLibcuda(12040, status=3))
    assert devices.driver_cuda_version() == 0  # there, but gives no version
    monkeypatch.setattr(devices, "_load_libcuda", lambda: object())
    assert devices.driver_cuda_version() == 0  # a library without the driver API


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_no_cuda_says_why(gpus, monkeypatch, spec):
    """Each reason its own message; the advice to install another torch only where it helps."""
    gpus(0)
    monkeypatch.setattr(torch.version, "cuda", "13.0")

    def message() -> str:
        with pytest.raises(DeviceError) as err:
            resolve_device(spec)
        assert str(err.value).startswith(f"--device {spec}: no CUDA device is usable")
        return str(err.value)

    # No NVIDIA driver (libcuda cannot be loaded): no GPU here; reinstalling torch would not help.
    monkeypatch.setattr(devices, "_load_libcuda", lambda: None)
    msg = message()
    assert "this machine has no NVIDIA GPU (no NVIDIA driver" in msg and "--device cpu" in msg
    assert "pip install" not in msg and "whl" not in msg
    # A driver older than the build: that, the versions, and which torch to install.
    monkeypatch.setattr(devices, "_load_libcuda", lambda: FakeLibcuda(12040))
    msg = message()
    assert "the NVIDIA driver supports CUDA up to 12.4, older than the installed torch" in msg
    assert "(CUDA 13.0)" in msg and "--index-url https://download.pytorch.org/whl/cu126" in msg
    # A driver new enough, yet no GPU: what nvidia-smi sees, no reinstall advice.
    monkeypatch.setattr(devices, "_load_libcuda", lambda: FakeLibcuda(13010))
    msg = message()
    assert "driver is installed (supports CUDA 13.1) but CUDA finds no usable GPU" in msg and "nvidia-smi" in msg
    assert "pip install" not in msg
    # A CPU-only torch: install a CUDA build. CUDA_VISIBLE_DEVICES hiding every GPU: say so.
    monkeypatch.setattr(torch.version, "cuda", None)
    msg = message()
    assert "has no GPU support" in msg and "--index-url" in msg
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    msg = message()
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in msg and "pip install" not in msg


def test_under_torchrun_a_fixed_index_is_refused(gpus, monkeypatch):
    gpus(2)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DeviceError, match="each process takes the GPU of its LOCAL_RANK"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_gpus_option(gpus):
    gpus(2)
    assert parse_gpus("0,1") == [0, 1] and parse_gpus(" 1 ") == [1] and parse_gpus(None) == []
    check_gpus([0, 1])
    with pytest.raises(DeviceError, match=r"GPU\(s\) \[2\] do not exist"):
        check_gpus([0, 2])
    gpus(0)
    with pytest.raises(DeviceError, match="--gpus 0: no CUDA device is usable"):
        check_gpus([0])


def test_gpus_count_inside_the_schedulers_mask(gpus, monkeypatch):
    gpus(2)
    assert visible_mask([1, 0]) == "1,0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_mask([0, 1]) == "2,3" and visible_mask([1]) == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa, GPU-bbbb")
    assert visible_mask([1]) == "GPU-bbbb"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(DeviceError, match=r"CUDA_VISIBLE_DEVICES=2,3 shows this process 2"):
        check_gpus([2])


def test_precision_follows_the_device(gpus):
    gpus(1, bf16=True)
    assert devices.autocast_dtype(torch.device("cuda", 0)) is torch.bfloat16
    gpus(1, bf16=False)  # V100, T4: no native bf16 -> fp32, never emulated bf16
    assert devices.autocast_dtype(torch.device("cuda", 0)) is None
    assert devices.autocast_dtype(torch.device("cpu")) is None
    # A mixed box (A100 as cuda:0, the process's current device; V100 as cuda:1): each device's
    # own card decides, where torch.cuda.is_bf16_supported() would answer for cuda:0 both times.
    gpus(2, majors=[8, 7])
    assert devices.autocast_dtype(torch.device("cuda", 0)) is torch.bfloat16
    assert devices.autocast_dtype(torch.device("cuda", 1)) is None
    assert devices.autocast_dtype(torch.device("cuda")) is torch.bfloat16  # no index: the current one
    with devices.train_precision(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16), devices.inference_precision(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32


def test_cpu_note_only_when_a_gpu_is_idle(gpus):
    gpus(0)
    assert devices.cuda_unused_note(torch.device("cpu")) is None
    gpus(2)
    assert "2 CUDA GPU(s) available but this runs on the CPU" in devices.cuda_unused_note(torch.device("cpu"))
