"""The weight paths `benchmarks.weight_transport` times, one version at a time, in one process
(learner and sampler side by side) except the broadcast, which is `weight_transport_push_api`.

- `today_store`: the store path as it was before the lean path (main at 87b9aac), pinned here so
  the row stays "today's" after the lean path replaces `shared.weights`: save_pretrained in the
  serving dtype, fsync and sha256 every file (a second read), rename into place; the sampler
  copies the folder (`shutil.copytree`), hashes the copy (a third read) and the transformers
  backend reads it (a fourth) into its parameters. Sampling is stopped for fetch + load (the
  follower's `_swap` runs them in the sampling loop).
- `lean_store`: the lean store path (`shared.weight_snapshot`, `lean=True` stores, the async
  sampler's prefetch).
- `memcpy`: one `copy_` of a flat buffer of the same bytes, the physical floor.
Each returns {"publish_s" (learner's critical path), "serving_s" (publish to serving),
"pause_s" (sampler stopped)}.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from shared.weight_folder import MANIFEST, fsync_path, save_model_as, sha256_file, verify_folder

DTYPE = "bfloat16"  # the serving dtype the issue asks for (halves float32's bytes)


def _today_publish(model: Any, root: Path, version: int) -> tuple[Path, str]:
    """`FsWeightStore.publish` + `write_version_folder` as of 87b9aac (no tokenizer)."""
    import hashlib

    tmp, final = root / f".tmp-v{version}", root / f"v{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model_as(model, tmp, DTYPE)
    files = []
    for p in sorted(tmp.iterdir()):
        if p.is_file():
            fsync_path(p)
            files.append({"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)})
    manifest = json.dumps({"format": 1, "version": version, "files": files, "dtype": DTYPE},
                          sort_keys=True, indent=1).encode()
    (tmp / MANIFEST).write_bytes(manifest)
    fsync_path(tmp / MANIFEST)
    fsync_path(tmp)
    os.rename(tmp, final)
    fsync_path(root)
    return final, hashlib.sha256(manifest).hexdigest()


def today_store(model: Any, backend: Any, work: Path, version: int) -> dict:
    root, local = work / "store-today", work / "local-today" / f"v{version}"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder, checksum = _today_publish(model, root, version)
    t1 = time.perf_counter()
    shutil.rmtree(local, ignore_errors=True)
    shutil.copytree(folder, local)  # FsWeightStore.fetch(msg, dest): a private copy
    verify_folder(local, checksum)
    backend.load_weights(local)
    t2 = time.perf_counter()
    shutil.rmtree(local, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # keep one version on disk at a time
    return {"publish_s": t1 - t0, "serving_s": t2 - t0, "pause_s": t2 - t1}


def lean_store(model: Any, backend: Any, work: Path, version: int) -> dict | None:
    """The lean store path: the learner is blocked only for the snapshot (a copy to CPU in the
    served dtype); writing it once, XXH3-hashed as written and not fsynced (`durable=False`, as
    the background publisher writes), runs on the publisher's thread (timed here in line); the
    sampler's prefetch thread hard-links the files and hashes them in the one read that verifies
    them (async mode: beside sampling), and the swap loads them (the pause). None before main had it."""
    try:
        from shared.weights import FsWeightStore, snapshot_model
    except ImportError:
        return None
    store = FsWeightStore("bench", work / "store-lean", keep_versions=1, lean=True)
    local = work / "local-lean" / f"v{version}"
    t0 = time.perf_counter()
    snap = snapshot_model(model, DTYPE)
    t1 = time.perf_counter()
    msg = store.publish_snapshot(snap, None, version, version, durable=False)
    path = store.fetch(msg, dest=local)  # `services.sampler.store_prefetch`'s share
    t2 = time.perf_counter()
    backend.load_weights(path)
    t3 = time.perf_counter()
    shutil.rmtree(local, ignore_errors=True)
    return {"publish_s": t1 - t0, "serving_s": t3 - t0, "pause_s": t3 - t2}


def memcpy(nbytes: int, repeats: int = 5) -> dict:
    """Best-of-`repeats` seconds for one `dst.copy_(src)` of `nbytes` (bf16 flat buffers)."""
    import torch

    src = torch.ones(nbytes // 2, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    dst.copy_(src)  # fault the pages in before timing
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return {"publish_s": best, "serving_s": best, "pause_s": best}
