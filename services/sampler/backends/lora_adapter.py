"""Reading a LoRA weight version (a `peft` adapter folder) for the generation backends.

A LoRA run publishes each version as its adapter alone (`shared.weight_folder`): for every
target linear layer `<module>` of the base model, `base_model.model.<module>.lora_A.weight`
(r, in) and `...lora_B.weight` (out, r) in adapter_model.safetensors, and r, lora_alpha in
adapter_config.json. The served policy is the base model with each `<module>.weight` replaced
by W + (alpha / r) * B @ A (rsLoRA: alpha / sqrt(r)).

`read_adapter` checks an adapter against the served model's tensor shapes before anything is
changed (a misfit raises `IncompatibleWeights`, the old policy keeps serving): the vLLM backend
then hands the folder to vLLM's own LoRA support or reloads a merged copy of the whole model
(`write_merged`), the transformers backend merges it (`merged_deltas`) into a kept copy of the
base weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.sampler.backends.base import IncompatibleWeights
from shared.weight_folder import ADAPTER_CONFIG

PREFIX = "base_model.model."
ADAPTER_TENSORS = "adapter_model.safetensors"


@dataclass
class Adapter:
    rank: int
    scale: float
    pairs: dict[str, tuple[Any, Any]]
    """{base weight name (e.g. model.layers.0.self_attn.q_proj.weight): (A (r, in), B (out, r))}"""


def adapter_rank(path: str | Path) -> int:
    return int(json.loads((Path(path) / ADAPTER_CONFIG).read_text())["r"])


def read_adapter(path: str | Path, shapes: dict[str, tuple[int, ...]]) -> Adapter:
    """The adapter at `path`, checked against the served model's {tensor name: shape}."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        cfg = json.loads((path / ADAPTER_CONFIG).read_text())
        tensors = load_file(str(path / ADAPTER_TENSORS))
    except (OSError, ValueError) as err:
        raise IncompatibleWeights(f"{path}: not a readable LoRA adapter ({err})") from None
    if cfg.get("peft_type") != "LORA" or cfg.get("fan_in_fan_out") or cfg.get("use_dora") \
            or cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise IncompatibleWeights(f"{path}: only plain LoRA adapters are served (one r and alpha, no DoRA)")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)
    halves: dict[str, dict[str, Any]] = {}
    for key, t in tensors.items():
        module, dot, kind = key.removeprefix(PREFIX).rpartition(".lora_")
        if not key.startswith(PREFIX) or not dot or kind not in ("A.weight", "B.weight"):
            raise IncompatibleWeights(f"{path}: unexpected adapter tensor {key}")
        halves.setdefault(module + ".weight", {})[kind[0]] = t
    pairs = {}
    for name, h in sorted(halves.items()):
        a, b = h.get("A"), h.get("B")
        if a is None or b is None or name not in shapes:
            raise IncompatibleWeights(f"{path}: {name} has no matching A/B pair or no such weight in the model")
        if a.shape[0] != r or b.shape[1] != r or (b.shape[0], a.shape[1]) != tuple(shapes[name]):
            raise IncompatibleWeights(f"{path}: {name}: A {tuple(a.shape)} / B {tuple(b.shape)} do not fit "
                                      f"{tuple(shapes[name])} at rank {r}")
        pairs[name] = (a, b)
    if not pairs:
        raise IncompatibleWeights(f"{path}: the adapter holds no LoRA tensors")
    return Adapter(r, scale, pairs)


def merged_deltas(adapter: Adapter) -> dict[str, Any]:
    """{base weight name: scale * B @ A}, float32, as peft's merge computes it."""
    return {name: (b.float() @ a.float()) * adapter.scale for name, (a, b) in adapter.pairs.items()}


def write_merged(base: str | Path, adapter: Adapter, out: Path) -> Path:
    """Write base + adapter as a whole model folder at `out` (config.json and every safetensors
    file of `base`, the adapter's target weights merged, in float32). Whole: vLLM's layer-wise
    in-place reload of a folder holding only the target weights was measured to leave the rest of
    a fused layer (k_proj of a q/v-only adapter in qkv_proj) unset: NaN log-probs."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    deltas, base = merged_deltas(adapter), Path(base)
    out.mkdir(parents=True, exist_ok=True)
    for file in sorted(base.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        for name in tensors.keys() & deltas.keys():
            tensors[name] = tensors[name].float() + deltas[name]
        save_file(tensors, str(out / file.name), metadata={"format": "pt"})
    for name in ("config.json", "model.safetensors.index.json"):
        if (base / name).exists():
            shutil.copy2(base / name, out / name)
    return out
