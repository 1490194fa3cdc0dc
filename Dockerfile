# GPU image: CUDA runtime base, ffmpeg, the toolkit. PyTorch's CUDA wheels bring their own CUDA
# libraries; the base image supplies the driver-facing runtime.
#   docker build -t umbenet .
#   docker run --gpus all -v /data/MAFW:/raw -v $PWD/work:/work umbenet prep mafw /raw --out /work/cache
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/umbenet
COPY pyproject.toml README.md ./
COPY umbenet_cli ./umbenet_cli
COPY pipelines ./pipelines
RUN python3 -m venv /opt/venv && pip install --upgrade pip && pip install .
COPY sample_data ./sample_data

WORKDIR /work
ENTRYPOINT ["umbenet"]
CMD ["--help"]
