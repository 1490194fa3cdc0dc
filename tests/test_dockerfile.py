"""The Docker image's CUDA base and the torch wheel index it installs from name the same CUDA."""
from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def test_cuda_base_agrees_with_the_torch_wheel():
    text = DOCKERFILE.read_text()
    cuda = re.search(r"^ARG CUDA=(\d+)\.(\d+)\.\d+$", text, re.M)
    index = re.search(r"^ARG TORCH_INDEX=cu(\d+)$", text, re.M)
    assert cuda and index, "Dockerfile: ARG CUDA=X.Y.Z and ARG TORCH_INDEX=cuXY"
    assert cuda.group(1) + cuda.group(2) == index.group(1)
    assert "FROM nvidia/cuda:${CUDA}-" in text
    # torch comes from that index before `pip install .` (which would otherwise take PyPI's wheel).
    torch_line = text.index("--index-url https://download.pytorch.org/whl/${TORCH_INDEX}")
    assert torch_line < text.index("RUN pip install .")
