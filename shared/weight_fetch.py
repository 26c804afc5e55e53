"""The lean fetch from an fs weight store: hard links instead of a copy, one read to verify.

A sampler needs a private handle on a version because the learner prunes old ones. A hard link
is that handle for free: the store's `rmtree` removes its own name, the inode lives on under
ours, and the learner never writes into a published file (every version is a new file renamed
into place). Across filesystems (`os.link` fails: EXDEV, or a volume that has no links) each file
is copied with its digest computed from the bytes as they are copied, so no second read. Either
way every byte is checked against the manifest, which is checked against the announcement.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from shared.weight_digest import file_digest, hasher
from shared.weight_folder import MANIFEST, WeightsCorrupt, entry_algorithm

COPY_BLOCK = 8 << 20


def read_manifest(raw: bytes, checksum: str, where: Any) -> dict[str, Any]:
    """The manifest's content, once its bytes match the announced checksum."""
    if hashlib.sha256(raw).hexdigest() != checksum:
        raise WeightsCorrupt(f"{where}: manifest checksum mismatch")
    return json.loads(raw)


def _copy_hashed(src: Path, dst: Path, algo: str) -> tuple[int, str]:
    h, size = hasher(algo), 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(COPY_BLOCK), b""):
            h.update(block)
            fout.write(block)
            size += len(block)
    return size, h.hexdigest()


def _bring(src: Path, dst: Path, algo: str) -> tuple[int, str]:
    """Hard-link `src` to `dst` and hash it, or copy it hashing on the way; returns (size, digest)."""
    try:
        os.link(src, dst)
    except FileNotFoundError:
        raise
    except OSError:  # another filesystem, or one without links: a copy, still one read
        return _copy_hashed(src, dst, algo)
    return dst.stat().st_size, file_digest(dst, algo)


def link_verified(src: Path, dest: Path, checksum: str) -> dict[str, Any]:
    """Put version folder `src` at `dest` (links, else copies) and verify every byte; returns the manifest."""
    try:
        raw = (src / MANIFEST).read_bytes()
    except OSError as err:
        raise WeightsCorrupt(f"{src}: no manifest ({err.strerror or err})") from None
    manifest = read_manifest(raw, checksum, src)
    dest.mkdir(parents=True)
    for f in manifest["files"]:
        try:
            algo = entry_algorithm(f, src)
            size, digest = _bring(src / f["name"], dest / f["name"], algo)
        except OSError as err:  # pruned under us, or unreadable
            raise WeightsCorrupt(f"{src}: cannot fetch {f['name']} ({err.strerror or err})") from None
        if size != f["size"]:
            raise WeightsCorrupt(f"{src}: {f['name']} has {size} bytes, manifest says {f['size']}")
        if digest != f[algo]:
            raise WeightsCorrupt(f"{src}: {f['name']} {algo} mismatch")
    (dest / MANIFEST).write_bytes(raw)
    return manifest
