"""Prep's image tower takes training's precision decision (devices.autocast_dtype): bf16 autocast
only on GPUs with native bfloat16, fp32 on V100/T4 and the CPU; prep prints it and records it in
every features part. The GPU is faked (torch.cuda patched): its compute capability decides."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from pipelines.embed_stage import EmbedStage
from pipelines.prep import embed_line, run_prep
from pipelines.prep_options import PrepOptions
from tests.pipelines.prep_fixtures import CLASSES, small_manifest
from umbenet_cli.data.cache_io import features_dir, list_parts, read_part_info
from umbenet_cli.model.config import UMBEnetConfig

GPUS = {"Tesla V100-SXM2-16GB": (7, 0), "Tesla T4": (7, 5), "NVIDIA A100-SXM4-40GB": (8, 0)}


@pytest.fixture
def fake_gpu(monkeypatch):
    """``fake_gpu(name)``: this machine has one CUDA GPU ``name`` of its real compute capability
    (devices.autocast_dtype then decides from it, as on that card)."""
    def have(name: str) -> None:
        major, minor = GPUS[name]
        props = SimpleNamespace(name=name, major=major, minor=minor)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    return have


class RecordingBackbone:
    """The towers' interface, on the CPU whatever the device: records the autocast state the
    image tower runs under."""

    dims = SimpleNamespace(embed_dim=4, image_size=8)

    def __init__(self) -> None:
        self.seen: list[tuple[bool, torch.dtype]] = []

    def to(self, device):
        return self

    def preprocess(self, frames, device=None):
        return torch.zeros(len(frames), 3, 8, 8)

    def encode_images(self, pixels):
        self.seen.append((torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")))
        return torch.zeros(len(pixels), 4)


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("gpu, autocast, precision", [
    ("Tesla V100-SXM2-16GB", False, "fp32"), ("Tesla T4", False, "fp32"),
    ("NVIDIA A100-SXM4-40GB", True, "bf16 autocast")])
def test_image_tower_follows_the_gpus_bf16_support(fake_gpu, gpu, autocast, precision):
    from umbenet_cli.devices import precision_name

    fake_gpu(gpu)
    backbone = RecordingBackbone()
    stage = EmbedStage(backbone, "cuda:0", frame_batch=2, scene=False, jpeg_threads=1)
    try:
        stage._images([[jpeg(), jpeg(), jpeg()]])
    finally:
        stage.close()
    assert stage.precision == precision == precision_name(torch.device("cuda", 0))  # training's decision
    assert backbone.seen and all(on == autocast for on, _ in backbone.seen)
    if autocast:
        assert all(dtype is torch.bfloat16 for _, dtype in backbone.seen)
    notes = stage.notes()
    assert notes == {"embed_device": f"cuda:0 ({gpu})", "image_tower_precision": precision,
                     "text_tower_precision": "fp32"}
    line = embed_line(notes)
    assert f"image tower {precision}" in line and gpu in line
    assert ("no native bfloat16" in line) == (not autocast)


def test_prep_prints_and_records_the_precision(tmp_path):
    """A whole prep on the CPU: the line is printed and every features part records it."""
    manifest = small_manifest(tmp_path / "data", n=2)
    out = io.StringIO()
    opts = PrepOptions(source="manifest", root=manifest, out=tmp_path / "cache", model=UMBEnetConfig.preset("tiny"),
                       source_options={"classes": CLASSES})
    run_prep(opts, Console(file=out, width=200))
    assert "embed: CLIP towers on cpu: image tower fp32, text tower fp32" in out.getvalue()
    parts = list_parts(features_dir(tmp_path / "cache"))
    assert parts and all(read_part_info(p.path).notes == {
        "embed_device": "cpu", "image_tower_precision": "fp32", "text_tower_precision": "fp32"} for p in parts)
    # Readable without this package: the notes sit in the Parquet footer's `umbenet` JSON.
    import json

    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(parts[0].path).metadata[b"umbenet"])
    assert meta["notes"]["image_tower_precision"] == "fp32" and "image_tower_precision" not in meta["spec"]
