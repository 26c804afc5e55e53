"""The weight store: publish a policy version atomically, fetch it back verified.

Owns where versions live and how they move; what a version folder holds (a whole model or a
LoRA adapter), its manifest and its check are `shared.weight_folder`, re-exported here.

Two stores (`LearnerConfig.weight_store`):
- `fs`: `root/vN/`, written into `root/.tmp-vN/`, fsynced, then renamed: a folder named `vN`
  is always complete. The background publisher writes with `durable=False` (no fsync: the
  page cache serves the samplers) and the learner's commit calls `make_durable` on the version
  its checkpoint claims. For a shared volume (compose) or a PVC (Kubernetes).
- `redis`: the same files in chunks in one hash at `RunKeys.weight_blob(N)`, written under a
  temporary key and RENAMEd into place (atomic), for a single box without a shared volume.
The learner announces a version only after `publish()` returned; readers `fetch()` and get a
local folder, or `WeightsCorrupt` naming what did not match (never a half-written policy).

`lean=True` (the default) is the store path without waste: a whole model is written once from a
`Snapshot` and hashed as written (`shared.weight_snapshot`; `publish_snapshot` lets the learner
take the snapshot on its thread and write it on another); an fs fetch hard-links the version's
files into `dest` (a copy only across filesystems) and hashes each file in the one read that
verifies it; a Redis fetch hashes chunks as they arrive. `lean=False` keeps the first design
(save_pretrained, re-read to hash; copytree, re-read to verify) for comparison benchmarks.
"""

from __future__ import annotations

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
from shared.metrics import StreamMetrics
from shared.redis_client import with_retry
from shared.protocol import WeightsPublished
from shared.weight_folder import (  # noqa: F401 (re-exported: the store's vocabulary)
    ADAPTER_CONFIG, MANIFEST, WeightsCorrupt, entry_algorithm, fsync_path, is_adapter, is_lora_model, model_ties_embeddings,
    save_adapter_as, save_model_as, sha256_file, tied_embeddings, verify_folder, write_version_folder,
)
from shared.weight_digest import hasher
from shared.weight_fetch import link_verified, read_manifest
from shared.weight_snapshot import Snapshot, snapshot_model, write_snapshot

CHUNK_BYTES = 8 << 20  # Redis store: 8 MiB per hash field keeps each command small


def _message(run_id: str, version: int, step: int, location: str, fmt: str, manifest: bytes) -> WeightsPublished:
    size = sum(f["size"] for f in json.loads(manifest)["files"]) + len(manifest)
    return WeightsPublished(run_id=run_id, version=version, location=location, format=fmt,
                            checksum=hashlib.sha256(manifest).hexdigest(), byte_size=size, step=step,
                            published_at=time.time())


def lean_writable(model: Any) -> bool:
    """A plain transformers model. Adapters (megabytes) keep the peft path; FSDP's gathered view
    (`services.learner.fsdp.GatheredPolicy`) keeps save_pretrained, which drops its tied keys."""
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel) and not is_lora_model(model)


class WeightStore:
    """Base: `publish` a version, `fetch` one verified, `prune` old ones."""

    format: str = ""
    fsync_folder = True  # whether the folder `_publish_with` writes is the durable copy

    def __init__(self, run_id: str, root: Path, keep_versions: int = 3, lean: bool = True) -> None:
        self.run_id, self.root, self.keep_versions, self.lean = run_id, Path(root), keep_versions, lean

    def publish(self, model: Any, tokenizer: Any, version: int, step: int,
                dtype: str | None = None) -> WeightsPublished:
        """Write version `version` (tensors in `dtype`; None: the model's own) and return its announcement."""
        if self.lean and lean_writable(model):
            return self.publish_snapshot(snapshot_model(model, dtype), tokenizer, version, step)
        return self._publish_with(lambda folder: write_version_folder(model, tokenizer, folder, version, step, dtype),
                                  version, step)

    def publish_snapshot(self, snap: Snapshot, tokenizer: Any, version: int, step: int,
                         durable: bool = True) -> WeightsPublished:
        """Write a `Snapshot` taken earlier (safe on another thread: it shares nothing with training).
        `durable=False`: no fsync (the rename is still atomic; `make_durable` syncs it later)."""
        return self._publish_with(lambda folder: write_snapshot(snap, tokenizer, folder, version, step,
                                                                self.fsync_folder and durable),
                                  version, step, durable)

    def _publish_with(self, write: Any, version: int, step: int, durable: bool = True) -> WeightsPublished:
        """Run `write(folder) -> manifest bytes` into a temporary place and install it atomically."""
        raise NotImplementedError

    def make_durable(self, version: int) -> None:
        """fsync version `version` if it was published with `durable=False` (a checkpoint is about
        to claim it). Base: nothing (Redis keeps its own durability, its append-only file)."""

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

    def _publish_with(self, write: Any, version: int, step: int, durable: bool = True) -> WeightsPublished:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp, final = self.root / f".tmp-v{version}", self.folder(version)
        shutil.rmtree(tmp, ignore_errors=True)  # a crash's leftover
        manifest = write(tmp)
        if final.exists():  # re-published after a resume: move the old one aside, then replace
            old = self.root / f".old-v{version}-{time.time_ns()}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)
        if durable:
            fsync_path(self.root)
        self.prune(self.keep_versions)
        return _message(self.run_id, version, step, str(final), self.format, manifest)

    def make_durable(self, version: int) -> None:
        folder = self.folder(version)
        if not folder.is_dir():
            return  # pruned: a checkpoint claims the newest version, which is never pruned
        for p in folder.iterdir():
            fsync_path(p)  # data already on disk (synced before) costs nearly nothing
        fsync_path(folder)
        fsync_path(self.root)

    def fetch(self, msg: WeightsPublished, dest: Path | None = None) -> Path:
        """Verify the version in place (dest None) or bring it to `dest` (lean: hard links, which a
        prune cannot pull away; else a copy) and verify what is there."""
        self._check(msg)
        src = Path(msg.location)
        if dest is None:
            verify_folder(src, msg.checksum)
            return src
        dest = Path(dest)
        shutil.rmtree(dest, ignore_errors=True)
        if self.lean:
            link_verified(src, dest, msg.checksum)
            return dest
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
    fsync_folder = False  # the lean write's folder is scratch, read into Redis and deleted

    def __init__(self, run_id: str, root: Path, r: redis.Redis, keep_versions: int = 3,
                 chunk_bytes: int = CHUNK_BYTES, lean: bool = True, metrics: StreamMetrics | None = None) -> None:
        super().__init__(run_id, root, keep_versions, lean)
        self.r, self.keys, self.chunk_bytes, self.metrics = r, RunKeys(run_id), chunk_bytes, metrics

    def _publish_with(self, write: Any, version: int, step: int, durable: bool = True) -> WeightsPublished:
        key, tmp_key = self.keys.weight_blob(version), self.keys.weight_blob(version) + ":tmp"
        with tempfile.TemporaryDirectory(prefix="dashrl-publish-") as scratch:
            folder = Path(scratch) / "v"
            manifest = write(folder)
            self._retry(lambda: self.r.delete(tmp_key), f"clear {tmp_key}")
            for f in json.loads(manifest)["files"]:
                with open(folder / f["name"], "rb") as fh:
                    for i in range(max(1, -(-f["size"] // self.chunk_bytes))):  # an empty file: one empty chunk
                        field, chunk = f"{f['name']}:{i}", fh.read(self.chunk_bytes)
                        self._retry(lambda: self.r.hset(tmp_key, field, chunk), f"write {tmp_key} {field}")
            self._retry(lambda: self.r.hset(tmp_key, MANIFEST, manifest), f"write {tmp_key} manifest")
        self._retry(lambda: self._install(tmp_key, key), f"install {key}")  # atomic: complete or absent
        self.prune(self.keep_versions)
        return _message(self.run_id, version, step, key, self.format, manifest)

    def _retry(self, fn: Any, what: str) -> Any:
        """Every command here is idempotent (or made so: `_install`), so a Redis blip is retried
        (`with_retry`'s backoff, 60 s) instead of failing the version."""
        return with_retry(fn, what=f"weight store: {what}", metrics=self.metrics)

    def _install(self, tmp_key: str, key: str) -> None:
        try:
            self.r.rename(tmp_key, key)
        except redis.ResponseError:  # no tmp key: a retry after a rename whose reply was lost?
            if not self.r.exists(key):
                raise

    def fetch(self, msg: WeightsPublished, dest: Path | None = None) -> Path:
        """Copy the version's files out of Redis into `dest` (default: a new temporary folder)."""
        self._check(msg)
        raw = self._retry(lambda: self.r.hget(msg.location, MANIFEST), f"read {msg.location}")
        if raw is None:
            raise WeightsCorrupt(f"{msg.location}: version not in Redis (pruned or never written)")
        manifest = read_manifest(raw, msg.checksum, msg.location)
        dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix=f"dashrl-v{msg.version}-"))
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for f in manifest["files"]:
            algo = entry_algorithm(f, msg.location)
            h, size = hasher(algo), 0
            with open(dest / f["name"], "wb") as out:  # chunk by chunk: never the whole file in memory
                for i in range(max(1, -(-f["size"] // self.chunk_bytes))):
                    field = f"{f['name']}:{i}"
                    chunk = self._retry(lambda: self.r.hget(msg.location, field), f"read {msg.location} {field}")
                    if chunk is None:
                        raise WeightsCorrupt(f"{msg.location}: {f['name']} chunk {i} is missing")
                    out.write(chunk)
                    h.update(chunk)  # lean: verified as it arrives, not re-read
                    size += len(chunk)
            if self.lean and (size != f["size"] or h.hexdigest() != f[algo]):
                raise WeightsCorrupt(f"{msg.location}: {f['name']} size or {algo} mismatch")
        (dest / MANIFEST).write_bytes(raw)
        if not self.lean:
            verify_folder(dest, msg.checksum)
        return dest

    def versions(self) -> list[int]:
        prefix = self.keys.weight_blob(0)[:-1]  # ".../weights:v"
        out = []
        keys = self._retry(lambda: list(self.r.scan_iter(match=prefix + "*", count=1000)), "list versions")
        for k in keys:
            tail = k.decode()[len(prefix):]
            if tail.isdigit():
                out.append(int(tail))
        return sorted(out)

    def prune(self, keep: int) -> list[int]:
        gone = self.versions()[:-keep] if keep > 0 else self.versions()
        if gone:
            self._retry(lambda: self.r.delete(*[self.keys.weight_blob(v) for v in gone]), "prune")
        return gone


def make_store(kind: Literal["fs", "redis"], *, run_id: str, root: Path, r: redis.Redis | None,
               keep_versions: int = 3, lean: bool = True, metrics: StreamMetrics | None = None) -> WeightStore:
    """`root` is the fs store's folder (the run's `weights/`); the Redis store needs `r` (its
    retried Redis errors count in `metrics.redis_errors`); `lean=False`: the first, slower
    write and fetch (kept for benchmarks)."""
    if kind == "fs":
        return FsWeightStore(run_id, root, keep_versions, lean)
    if kind == "redis":
        if r is None:
            raise ValueError("the redis weight store needs a Redis client")
        return RedisWeightStore(run_id, root, r, keep_versions, lean=lean, metrics=metrics)
    raise ValueError(f"unknown weight store {kind!r}")
