"""One weight version on disk: its files, its manifest, its integrity check.

A version is a Hugging Face folder plus `dashrl-manifest.json`: every file's name, size and
digest (sha256, or XXH3-128 on the lean path: `shared.weight_digest`), the version, the step, the dtype of its tensors, whether the input and output embeddings
are tied and whether the folder is a LoRA adapter. `WeightsPublished.checksum` is the sha256 of
the manifest's bytes, so one hash pins every byte of the version. The stores that move these
folders are `shared.weights`.

Two kinds of folder, both written in the served dtype (`dtype=`, the learner passes the resolved
`model.dtype`: a learner training float32 master weights publishes bfloat16 tensors for a
bfloat16 sampler, half the bytes, and config.json says so):
- the whole model (config.json, model.safetensors, generation_config.json, tokenizer files);
- with `model.lora`, the adapter only, as `peft` saves it (adapter_config.json,
  adapter_model.safetensors, tokenizer files): megabytes, served on top of the starting model
  (`is_adapter(path)`; docs/sampler.md, LoRA adapters).

Tied embeddings: vLLM's CPU backend was measured NOT to update the output layer when weights
are reloaded in place and `tie_word_embeddings` is set. The manifest records the flag;
`tied_embeddings(path)` reads it, so the sampler knows to re-pack the output layer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from shared.weight_digest import algorithm, file_digest

MANIFEST = "dashrl-manifest.json"
ADAPTER_CONFIG = "adapter_config.json"  # what peft writes beside an adapter's tensors


class WeightsCorrupt(Exception):
    """A weight version that is missing, truncated or does not match its checksum."""


def entry_algorithm(entry: dict[str, Any], where: Any) -> str:
    """The digest a manifest entry carries (`shared.weight_digest`), or `WeightsCorrupt`."""
    name = algorithm(entry)
    if name is None:
        raise WeightsCorrupt(f"{where}: {entry.get('name', '?')} has no digest this reader knows")
    return name


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def model_ties_embeddings(model: Any) -> bool:
    """True when the model's output layer shares (or is configured to share) the input embedding."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    flag = bool(getattr(cfg, "tie_word_embeddings", False))
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    shared = inp is not None and out is not None and inp.weight.data_ptr() == out.weight.data_ptr()
    return flag or shared


def tied_embeddings(path: str | Path) -> bool:
    """Whether the model folder at `path` ties input and output embeddings (manifest first,
    then config.json, including a multimodal `text_config`; absent everywhere: False)."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return bool(json.loads((path / MANIFEST).read_text())["tie_word_embeddings"])
    cfg = json.loads((path / "config.json").read_text())
    for section in (cfg, cfg.get("text_config") or {}):
        if "tie_word_embeddings" in section:
            return bool(section["tie_word_embeddings"])
    return False


def is_lora_model(model: Any) -> bool:
    """True for a `peft` model (the learner's policy with `model.lora` set)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def is_adapter(path: str | Path) -> bool:
    """Whether the folder at `path` holds a LoRA adapter rather than a whole model."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return bool(json.loads((path / MANIFEST).read_text()).get("adapter", False))
    return (path / ADAPTER_CONFIG).exists()


def save_adapter_as(model: Any, folder: Path, dtype: str | None = None) -> str:
    """Save only the adapter of the peft `model` (adapter_config.json + adapter_model.safetensors,
    tensors cast to `dtype`; None: as they are). Returns the dtype the tensors were saved in."""
    import torch

    state = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    saved = str(next(iter(state.values())).dtype).removeprefix("torch.")
    if dtype is not None and dtype != saved:
        state, saved = {k: v.to(getattr(torch, dtype)) for k, v in state.items()}, dtype
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    return saved


def save_model_as(model: Any, folder: Path, dtype: str | None = None) -> str:
    """`model.save_pretrained(folder)` with floating-point tensors cast to `dtype` (None: as they
    are); the model itself is not changed. Returns the dtype the tensors were saved in."""
    import torch

    own = str(model.dtype).removeprefix("torch.")
    if dtype is None or dtype == own:
        model.save_pretrained(folder, safe_serialization=True)
        return own
    target = getattr(torch, dtype)
    cast: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
    state = {}
    for name, t in model.state_dict().items():
        # One cast per shared tensor: tied weights stay one tensor, so save_pretrained drops the alias.
        key = (t.data_ptr(), tuple(t.shape))
        if key not in cast:
            cast[key] = t.to(target) if t.is_floating_point() else t
        state[name] = cast[key]
    model.save_pretrained(folder, state_dict=state, safe_serialization=True)
    config = copy.deepcopy(model.config)
    config.dtype = dtype  # save_pretrained wrote the master weights' dtype
    config.save_pretrained(folder)
    return dtype


def write_version_folder(model: Any, tokenizer: Any, folder: Path, version: int, step: int,
                         dtype: str | None = None) -> bytes:
    """Save model (tensors in `dtype`, None: the model's own; a peft model: its adapter only) +
    tokenizer into `folder`, fsync every file, write the manifest; returns its bytes."""
    folder.mkdir(parents=True)
    adapter = is_lora_model(model)
    saved_dtype = (save_adapter_as if adapter else save_model_as)(model, folder, dtype)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    files = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            fsync_path(p)
            files.append({"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)})
    manifest = json.dumps({
        "format": 1, "version": version, "step": step, "files": files, "dtype": saved_dtype,
        "tie_word_embeddings": model_ties_embeddings(model), "adapter": adapter,
    }, sort_keys=True, indent=1).encode()
    (folder / MANIFEST).write_bytes(manifest)
    fsync_path(folder / MANIFEST)
    fsync_path(folder)
    return manifest


def verify_folder(folder: Path, checksum: str) -> dict[str, Any]:
    """Check `folder` against the manifest and the manifest against `checksum`; returns the manifest."""
    try:
        raw = (folder / MANIFEST).read_bytes()
    except OSError as err:
        raise WeightsCorrupt(f"{folder}: no manifest ({err.strerror or err})") from None
    if hashlib.sha256(raw).hexdigest() != checksum:
        raise WeightsCorrupt(f"{folder}: manifest checksum mismatch")
    manifest = json.loads(raw)
    for f in manifest["files"]:
        p = folder / f["name"]
        try:
            size = p.stat().st_size
        except OSError:
            raise WeightsCorrupt(f"{folder}: missing file {f['name']}") from None
        if size != f["size"]:
            raise WeightsCorrupt(f"{folder}: {f['name']} has {size} bytes, manifest says {f['size']}")
        name = entry_algorithm(f, folder)
        if file_digest(p, name) != f[name]:
            raise WeightsCorrupt(f"{folder}: {f['name']} {name} mismatch")
    return manifest


def fsync_path(path: Path) -> None:
    """fsync a file or folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


