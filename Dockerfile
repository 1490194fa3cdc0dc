# GPU image: CUDA runtime base, ffmpeg, the toolkit. The base's CUDA and the torch wheel's CUDA
# agree: CUDA=12.8.1 <-> TORCH_INDEX=cu128 (PyTorch's wheel index, https://download.pytorch.org/whl/cu128).
# PyPI's own torch wheel targets the newest CUDA (13.x, driver >= 580), so torch is installed from
# the index first and `pip install .` keeps it. The wheel brings its CUDA libraries; the host needs
# an NVIDIA driver new enough for the base (12.x: >= 525). Change both together, e.g.
#   docker build -t umbenet:cu126 --build-arg CUDA=12.6.3 --build-arg TORCH_INDEX=cu126 .
#   docker build -t umbenet .
#   docker run --gpus all -v /data/MAFW:/raw -v $PWD/work:/work umbenet prep mafw /raw --out /work/cache --device cuda
ARG CUDA=12.8.1
FROM nvidia/cuda:${CUDA}-cudnn-runtime-ubuntu24.04
ARG TORCH_INDEX=cu128

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/umbenet
RUN python3 -m venv /opt/venv && pip install --upgrade pip \
 && pip install torch torchvision --index-url https://download.pytorch.org/whl/${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY umbenet_cli ./umbenet_cli
COPY pipelines ./pipelines
RUN pip install . \
 && python -c "import torch, sys; v = torch.version.cuda; sys.exit(0 if v and v.replace('.', '') == '${TORCH_INDEX}'[2:] else f'torch {torch.__version__} is not the ${TORCH_INDEX} build')"
COPY sample_data ./sample_data

WORKDIR /work
ENTRYPOINT ["umbenet"]
CMD ["--help"]
