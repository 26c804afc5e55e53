"""The weight store: publish a policy version atomically, fetch it back verified.

Owns the on-store layout of weight versions and their integrity check. A version is a Hugging
Face folder (config.json, model.safetensors, generation_config.json, tokenizer files) plus
`dashrl-manifest.json`: every file's name, size and sha256, the version, the step, the dtype of
its tensors and whether the input and output embeddings are tied. `WeightsPublished.checksum`
is the sha256 of the manifest's bytes, so one hash pins every byte of the version.

A version is written in the served dtype (`publish(..., dtype=)`, the learner passes the
resolved `model.dtype`): a learner training float32 master weights publishes bfloat16 tensors
for a bfloat16 sampler, half the bytes, and config.json says so.

Two stores (`LearnerConfig.weight_store`):
- `fs`: `root/vN/`, written into `root/.tmp-vN/`, fsynced, then renamed: a folder named `vN`
  is always complete. For a shared volume (compose) or a PVC (Kubernetes).
- `redis`: the same files in chunks in one hash at `RunKeys.weight_blob(N)`, written under a
  temporary key and RENAMEd into place (atomic), for a single box without a shared volume.
The learner announces a version only after `publish()` returned; readers `fetch()` and get a
local folder, or `WeightsCorrupt` naming what did not match (never a half-written policy).

Tied embeddings: vLLM's CPU backend was measured NOT to update the output layer when weights
are reloaded in place and `tie_word_embeddings` is set (docs/MEASURED). The manifest records
the flag; `tied_embeddings(path)` reads it, and a sampler must then load the version fresh
instead of `reload_weights` in place.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import redis

from shared.keys import RunKeys
from shared.protocol import WeightsPublished

MANIFEST = "dashrl-manifest.json"
CHUNK_BYTES = 8 << 20  # Redis store: 8 MiB per hash field keeps each command small


class WeightsCorrupt(Exception):
    """A weight version that is missing, truncated or does not match its checksum."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    """Save model (tensors in `dtype`, None: the model's own) + tokenizer into `folder`, fsync every
    file, write the manifest; returns its bytes."""
    folder.mkdir(parents=True)
    saved_dtype = save_model_as(model, folder, dtype)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    files = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != MANIFEST:
            fsync_path(p)
            files.append({"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)})
    manifest = json.dumps({
        "format": 1, "version": version, "step": step, "files": files, "dtype": saved_dtype,
        "tie_word_embeddings": model_ties_embeddings(model),
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
        if sha256_file(p) != f["sha256"]:
            raise WeightsCorrupt(f"{folder}: {f['name']} sha256 mismatch")
    return manifest


def fsync_path(path: Path) -> None:
    """fsync a file or folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _message(run_id: str, version: int, step: int, location: str, fmt: str, manifest: bytes) -> WeightsPublished:
    size = sum(f["size"] for f in json.loads(manifest)["files"]) + len(manifest)
    return WeightsPublished(run_id=run_id, version=version, location=location, format=fmt,
                            checksum=hashlib.sha256(manifest).hexdigest(), byte_size=size, step=step,
                            published_at=time.time())


class WeightStore:
    """Base: `publish` a version, `fetch` one verified, `prune` old ones."""

    format: str = ""

    def __init__(self, run_id: str, root: Path, keep_versions: int = 3) -> None:
        self.run_id, self.root, self.keep_versions = run_id, Path(root), keep_versions

    def publish(self, model: Any, tokenizer: Any, version: int, step: int,
                dtype: str | None = None) -> WeightsPublished:
        """Write version `version` (tensors in `dtype`; None: the model's own) and return its announcement."""
        raise NotImplementedError

    def fetch(self, msg: WeightsPublished, dest: Path | None = None) -> Path:
        raise NotImplementedError

    def prune(self, keep: int) -> list[int]:
        raise NotImplementedError

    def _check(self, msg: WeightsPublished) -> None:
        if msg.format != self.format or msg.run_id != self.run_id:
            raise WeightsCorrupt(f"{msg.format} version of run {msg.run_id} offered to the "
                                 f"{self.format} store of run {self.run_id}")


class FsWeightStore(WeightStore):
    format = "safetensors-dir"

    def folder(self, version: int) -> Path:
        return self.root / f"v{version}"

    def publish(self, model: Any, tokenizer: Any, version: int, step: int,
                dtype: str | None = None) -> WeightsPublished:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp, final = self.root / f".tmp-v{version}", self.folder(version)
        shutil.rmtree(tmp, ignore_errors=True)  # a crash's leftover
        manifest = write_version_folder(model, tokenizer, tmp, version, step, dtype)
        if final.exists():  # re-published after a resume: move the old one aside, then replace
            old = self.root / f".old-v{version}-{time.time_ns()}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)
        fsync_path(self.root)
        self.prune(self.keep_versions)
        return _message(self.run_id, version, step, str(final), self.format, manifest)

    def fetch(self, msg: WeightsPublished, dest: Path | None = None) -> Path:
        """Verify the version in place (dest None) or copy it to `dest` and verify the copy."""
        self._check(msg)
        src = Path(msg.location)
        if dest is None:
            verify_folder(src, msg.checksum)
            return src
        dest = Path(dest)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            shutil.copytree(src, dest)
        except (OSError, shutil.Error) as err:
            raise WeightsCorrupt(f"{src}: cannot copy ({err})") from None
        verify_folder(dest, msg.checksum)
        return dest

    def versions(self) -> list[int]:
        if not self.root.exists():
            return []
        return sorted(int(p.name[1:]) for p in self.root.iterdir() if p.name[:1] == "v" and p.name[1:].isdigit())

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest `keep` versions (and stale temporaries); returns those deleted."""
        gone = self.versions()[:-keep] if keep > 0 else self.versions()
        for v in gone:
            shutil.rmtree(self.folder(v), ignore_errors=True)
        for p in self.root.glob(".old-v*"):
            shutil.rmtree(p, ignore_errors=True)
        return gone


class RedisWeightStore(WeightStore):
    format = "redis-chunks"

    def __init__(self, run_id: str, root: Path, r: redis.Redis, keep_versions: int = 3,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(run_id, root, keep_versions)
        self.r, self.keys, self.chunk_bytes = r, RunKeys(run_id), chunk_bytes

    def publish(self, model: Any, tokenizer: Any, version: int, step: int,
                dtype: str | None = None) -> WeightsPublished:
        key, tmp_key = self.keys.weight_blob(version), self.keys.weight_blob(version) + ":tmp"
        with tempfile.TemporaryDirectory(prefix="dashrl-publish-") as scratch:
            folder = Path(scratch) / "v"
            manifest = write_version_folder(model, tokenizer, folder, version, step, dtype)
            self.r.delete(tmp_key)
            for f in json.loads(manifest)["files"]:
                with open(folder / f["name"], "rb") as fh:
                    for i in range(max(1, -(-f["size"] // self.chunk_bytes))):  # an empty file: one empty chunk
                        self.r.hset(tmp_key, f"{f['name']}:{i}", fh.read(self.chunk_bytes))
            self.r.hset(tmp_key, MANIFEST, manifest)
        self.r.rename(tmp_key, key)  # atomic: the key exists only once complete
        self.prune(self.keep_versions)
        return _message(self.run_id, version, step, key, self.format, manifest)

    def fetch(self, msg: WeightsPublished, dest: Path | None = None) -> Path:
        """Copy the version's files out of Redis into `dest` (default: a new temporary folder)."""
        self._check(msg)
        raw = self.r.hget(msg.location, MANIFEST)
        if raw is None:
            raise WeightsCorrupt(f"{msg.location}: version not in Redis (pruned or never written)")
        if hashlib.sha256(raw).hexdigest() != msg.checksum:
            raise WeightsCorrupt(f"{msg.location}: manifest checksum mismatch")
        dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix=f"dashrl-v{msg.version}-"))
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for f in json.loads(raw)["files"]:
            with open(dest / f["name"], "wb") as out:  # chunk by chunk: never the whole file in memory
                for i in range(max(1, -(-f["size"] // self.chunk_bytes))):
                    chunk = self.r.hget(msg.location, f"{f['name']}:{i}")
                    if chunk is None:
                        raise WeightsCorrupt(f"{msg.location}: {f['name']} chunk {i} is missing")
                    out.write(chunk)
        (dest / MANIFEST).write_bytes(raw)
        verify_folder(dest, msg.checksum)
        return dest

    def versions(self) -> list[int]:
        prefix = self.keys.weight_blob(0)[:-1]  # ".../weights:v"
        out = []
        for k in self.r.scan_iter(match=prefix + "*", count=1000):
            tail = k.decode()[len(prefix):]
            if tail.isdigit():
                out.append(int(tail))
        return sorted(out)

    def prune(self, keep: int) -> list[int]:
        gone = self.versions()[:-keep] if keep > 0 else self.versions()
        if gone:
            self.r.delete(*[self.keys.weight_blob(v) for v in gone])
        return gone


def make_store(kind: Literal["fs", "redis"], *, run_id: str, root: Path, r: redis.Redis | None,
               keep_versions: int = 3) -> WeightStore:
    """`root` is the fs store's folder (the run's `weights/`); the Redis store needs `r`."""
    if kind == "fs":
        return FsWeightStore(run_id, root, keep_versions)
    if kind == "redis":
        if r is None:
            raise ValueError("the redis weight store needs a Redis client")
        return RedisWeightStore(run_id, root, r, keep_versions)
    raise ValueError(f"unknown weight store {kind!r}")
