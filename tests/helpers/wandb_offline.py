"""Reading back an offline W&B run folder's `run-<id>.wandb` file in tests.

The file is W&B's own transaction log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then
LevelDB-log-format chunks (32 KiB blocks; each chunk: crc32c, length, type FULL/FIRST/MIDDLE/
LAST) holding serialized `wandb.proto.wandb_internal_pb2.Record` messages. wandb >= 0.2x no
longer ships its Python reader (`wandb.sdk.internal.datastore`), so this walks the chunks and
lets wandb's own protobuf classes decode every record.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    pos, parts, out = 7, [], []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            pos += left  # zero-filled rest of a block
            continue
        if pos + HEADER + length > len(data):
            break  # a chunk still being written
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        parts.append(chunk)
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            out.append(rec)
            parts = []
    return out


def history(path: Path) -> list[dict]:
    """Each `run.log` call's row: {key: value}."""
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item})
    return rows


def config(path: Path) -> dict:
    out = {}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind in ("config", "run"):
            for item in (rec.config.update if kind == "config" else rec.run.config.update):
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
