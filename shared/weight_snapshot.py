"""The lean write of a whole-model weight version: snapshot in the served dtype, write once, hash as written.

`save_pretrained` followed by a re-read to sha256 each file touches every byte twice. Here the
learner first takes a `Snapshot` (the tensors copied to CPU in the served dtype, because
training goes on mutating the live ones, tied tensors once), and `write_snapshot` then writes
`model.safetensors` itself (8-byte header length, the JSON header, the raw tensor bytes, in
the safetensors layout that `safetensors` and `from_pretrained` load) through a writer that
feeds every byte to XXH3-128 (`shared.weight_digest`) on its way to the file. The small files
(config, tokenizer) are hashed after writing. The manifest is `weight_folder`'s with
`"xxh3_128"` digests where the first design has `"sha256"`; `verify_folder` checks either.
`fsync=False` leaves the bytes in the page cache: a version a checkpoint does not claim needs no
durability (`WeightStore.make_durable` syncs the one it does; docs/reliability.md).
"""

from __future__ import annotations

import copy
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.weight_digest import FAST, file_digest, hasher

SAFETENSORS = "model.safetensors"
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
           "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


@dataclass
class Snapshot:
    """A model's weights frozen at one step, ready to be written off the training thread."""
    tensors: dict[str, Any]  # name -> contiguous CPU tensor in the served dtype (tied: stored once)
    config: Any  # a copy of model.config with `dtype` set to the served dtype
    generation_config: Any  # a copy, or None
    dtype: str
    tie_word_embeddings: bool


def snapshot_model(model: Any, dtype: str | None = None) -> Snapshot:
    """Copy `model`'s weights to CPU in `dtype` (None: the model's own); aliases of one tensor
    (tied embeddings) are kept once, under the first name, as save_pretrained does."""
    import torch

    from shared.weight_folder import model_ties_embeddings

    own = str(model.dtype).removeprefix("torch.")
    dtype = dtype or own
    target = getattr(torch, dtype)
    seen: set[tuple[int, tuple[int, ...]]] = set()
    tensors = {}
    with torch.no_grad():
        for name, t in model.state_dict().items():
            key = (t.data_ptr(), tuple(t.shape))
            if key in seen:
                continue  # the tied output layer: from_pretrained re-ties it from the config
            seen.add(key)
            want = target if t.is_floating_point() else t.dtype
            if t.device.type == "cpu":
                out = t.detach().to(want, copy=True)  # one copy: cast and copy at once
            else:  # cast on the device first: bfloat16 halves the bytes over PCIe
                out = t.detach().to(want).to("cpu")
            tensors[name] = out.contiguous()
    config = copy.deepcopy(model.config)
    config.dtype = dtype
    gen = getattr(model, "generation_config", None)
    can_generate = getattr(model, "can_generate", lambda: False)()
    return Snapshot(tensors, config, copy.deepcopy(gen) if gen is not None and can_generate else None,
                    dtype, model_ties_embeddings(model))


class HashingWriter:
    """A binary file that hashes every byte written to it (one pass: no re-read).

    The hash runs on a helper thread while this one writes the same (read-only) buffer: both
    release the GIL on large buffers, so the cost is the slower of the two, not their sum. One
    worker keeps the updates in write order."""

    def __init__(self, path: Path) -> None:
        self.f, self.h, self.size = open(path, "wb"), hasher(FAST), 0
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="digest")
        self._pending: list[Future] = []

    def write(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        self._pending.append(self._hasher.submit(self.h.update, view))
        self.f.write(view)
        self.size += len(view)

    def close(self, fsync: bool = True) -> tuple[int, str]:
        """Flush, fsync (durability before the rename) if asked, close; returns (size, digest)."""
        try:
            self.f.flush()
            if fsync:
                os.fsync(self.f.fileno())
        finally:
            self.f.close()
            self._hasher.shutdown(wait=True)
        for done in self._pending:
            done.result()  # a failed update must not pass for a digest
        return self.size, self.h.hexdigest()


def _raw(t: Any) -> memoryview:
    """The tensor's bytes without a copy (bfloat16 has no numpy dtype: viewed as bytes first)."""
    import torch

    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def write_safetensors(tensors: dict[str, Any], path: Path, fsync: bool = True) -> tuple[int, str]:
    """Write `tensors` as one safetensors file, hashing as it goes; returns (size, xxh3_128)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}  # transformers refuses a file without it
    offset = 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        kind = _DTYPES[str(t.dtype).removeprefix("torch.")]
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned, as safetensors itself pads
    out = HashingWriter(path)
    try:
        out.write(len(head).to_bytes(8, "little"))
        out.write(head)
        for t in tensors.values():
            if t.numel():
                out.write(_raw(t))
    finally:
        result = out.close(fsync)
    return result


def write_snapshot(snap: Snapshot, tokenizer: Any, folder: Path, version: int, step: int,
                   fsync: bool = True) -> bytes:
    """Write a `Snapshot` + tokenizer into `folder`, then the manifest; returns its bytes.
    `fsync=False` for a scratch folder whose bytes go elsewhere (the Redis store)."""
    from shared.weight_folder import MANIFEST, fsync_path

    sync = fsync_path if fsync else (lambda _p: None)
    folder.mkdir(parents=True)
    size, digest = write_safetensors(snap.tensors, folder / SAFETENSORS, fsync)
    hashed = {SAFETENSORS: {"name": SAFETENSORS, "size": size, FAST: digest}}
    snap.config.save_pretrained(folder)
    if snap.generation_config is not None:
        snap.generation_config.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    files = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            if p.name not in hashed:  # the small files: kilobytes to a few MB of tokenizer
                sync(p)
                hashed[p.name] = {"name": p.name, "size": p.stat().st_size, FAST: file_digest(p, FAST)}
            files.append(hashed[p.name])
    manifest = json.dumps({
        "format": 1, "version": version, "step": step, "files": files, "dtype": snap.dtype,
        "tie_word_embeddings": snap.tie_word_embeddings, "adapter": False,
    }, sort_keys=True, indent=1).encode()
    (folder / MANIFEST).write_bytes(manifest)
    sync(folder / MANIFEST)
    sync(folder)
    return manifest
