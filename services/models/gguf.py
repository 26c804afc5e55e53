"""A GGUF checkpoint -> a plain Hugging Face safetensors folder, converted once and cached.

Owns the conversion and its cache marker. transformers reads a GGUF file (`gguf_file=`, through
the `gguf` package) and dequantizes it to float32, but the model it returns carries a GGUF
"quantization config" and refuses `save_pretrained`. So the weights are moved into a clean model
of the same config (built on the meta device: no second allocation) and saved with the tokenizer,
its chat template and the generation config. Every other service then loads the folder like any
HF model (learner, transformers sampler, vLLM).

The folder is written to a staging directory and swapped in whole; a marker file
(`dashrl-gguf.json`) names the source file's sha256 and CONVERTER_VERSION, so a later call on the
same source reuses the folder, and a changed source or converter rebuilds it. Before the swap the
saved folder is loaded back with plain transformers and its logits compared with the GGUF-loaded
model's on a short prompt (the marker records the largest difference; it must be 0 up to float
noise, else the conversion fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

CONVERTER_VERSION = 1
MARKER = "dashrl-gguf.json"
CHECK_TEXT = "Question: what is 12 + 7?\nAnswer:"
MAX_CHECK_DIFF = 1e-4  # float32 logits of the same weights through the same code path


class ConversionError(RuntimeError):
    """The converted folder does not reproduce the GGUF model."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_current(folder: Path, source_sha256: str) -> bool:
    """Whether `folder` holds this converter's conversion of the source with that digest."""
    marker = read_marker(folder)
    return bool(marker and marker.get("source_sha256") == source_sha256
                and marker.get("converter_version") == CONVERTER_VERSION
                and (Path(folder) / "model.safetensors").exists())


def convert_gguf(gguf_path: str | Path, out: str | Path, *, source_sha256: str | None = None,
                 extra: dict | None = None, log: Callable[[str], None] = print) -> Path:
    """Return `out`, converting `gguf_path` into it unless a current conversion is already there.
    `source_sha256` (when the caller already checked it) saves hashing the file again; `extra`
    goes into the marker (e.g. where the file came from)."""
    gguf_path, out = Path(gguf_path), Path(out)
    digest = source_sha256 or sha256_file(gguf_path)
    if is_current(out, digest):
        log(f"gguf: reusing {out}")
        return out
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        info = _convert(gguf_path, staging, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info.update(source=gguf_path.name, source_sha256=digest, converter_version=CONVERTER_VERSION,
                seconds=round(time.monotonic() - t0, 1), **(extra or {}))
    (staging / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    # Swap in whole: a crash mid-build leaves the old folder (or none), never a half one.
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log(f"gguf: converted {gguf_path.name} -> {out} in {info['seconds']} s "
        f"({info['params'] / 1e6:.1f}M params, check max |logit diff| {info['check_max_abs_diff']:.2e})")
    return out


def _convert(gguf_path: Path, out: Path, log: Callable[[str], None]) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"gguf: loading {gguf_path} (dequantized to float32)")
    kwargs = dict(gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    model = _plain_copy(quantized)
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    diff = _check_reload(quantized, tokenizer, out)
    if not diff <= MAX_CHECK_DIFF:
        raise ConversionError(f"gguf: the saved folder's logits differ from the GGUF model's by {diff:.3g}")
    return dict(params=sum(p.numel() for p in model.parameters()), model_type=model.config.model_type,
                tied_embeddings=bool(getattr(model.config, "tie_word_embeddings", False)),
                check_max_abs_diff=diff)


def _plain_copy(quantized: Any) -> Any:
    """The same weights in a model whose config has no GGUF quantization entry (saveable)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(quantized.config)
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    # GGUF stores rms_norm_eps as float32: 1e-5 reads back as 9.9999997e-06; restore the decimal.
    eps = getattr(config, "rms_norm_eps", None)
    if isinstance(eps, float):
        config.rms_norm_eps = float(f"{eps:.6g}")
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = copy.deepcopy(quantized.generation_config)
    return model.eval()


def _check_reload(reference: Any, tokenizer: Any, folder: Path) -> float:
    """max |logit difference| between `reference` and the folder loaded with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([tokenizer(CHECK_TEXT, add_special_tokens=False).input_ids])
    with torch.no_grad():
        a = reference.eval()(ids).logits
        b = reloaded(ids).logits
    return float((a - b).abs().max())
