"""The lean store path: one-pass hashed write, hard-link fetch, background publish (real tiny models)."""

import hashlib
import json
import os
import threading

import pytest
import torch
import xxhash
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from services.learner.publisher import BackgroundPublisher, PublishFailed
from shared.weights import (
    MANIFEST, WeightsCorrupt, make_store, sha256_file, snapshot_model, verify_folder,
)
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def tiny(request, tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", tie_word_embeddings=request.param)
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_lean_write_loads_bit_identically_and_matches_the_old_path(tmp_path, tiny, dtype):
    model, tok = tiny
    lean = make_store("fs", run_id="r", root=tmp_path / "lean", r=None).publish(model, tok, 1, 1, dtype=dtype)
    old = make_store("fs", run_id="r", root=tmp_path / "old", r=None, lean=False).publish(model, tok, 1, 1, dtype=dtype)
    folder = tmp_path / "lean" / "v1"
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    target = getattr(torch, dtype) if dtype else torch.float32
    assert loaded.dtype == target
    master = model.state_dict()
    assert all(torch.equal(t, master[k].to(target)) for k, t in loaded.state_dict().items())
    mine, theirs = load_file(folder / "model.safetensors"), load_file(tmp_path / "old" / "v1" / "model.safetensors")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)  # tied: stored once
    manifest = json.loads((folder / MANIFEST).read_bytes())
    assert lean.checksum == hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    assert {f["name"] for f in manifest["files"]} == {p.name for p in folder.iterdir()} - {MANIFEST}
    for f in manifest["files"]:  # the hash taken while writing equals a re-read's
        assert "sha256" not in f and f["size"] == (folder / f["name"]).stat().st_size
        assert f["xxh3_128"] == xxhash.xxh3_128((folder / f["name"]).read_bytes()).hexdigest()
    assert all(f["sha256"] == sha256_file(tmp_path / "old" / "v1" / f["name"]) for f in
               json.loads((tmp_path / "old" / "v1" / MANIFEST).read_bytes())["files"])  # the first design: sha256
    old_manifest = json.loads((tmp_path / "old" / "v1" / MANIFEST).read_bytes())
    assert {k: v for k, v in manifest.items() if k != "files"} == {k: v for k, v in old_manifest.items() if k != "files"}
    assert lean.byte_size == sum(f["size"] for f in manifest["files"]) + len(json.dumps(manifest, sort_keys=True, indent=1))
    assert old.version == lean.version


@pytest.mark.parametrize("kind", ["fs", "redis"])
def test_lean_fetch_refuses_a_corrupted_file(tmp_path, tiny, redis_client, kind):
    store = make_store(kind, run_id=f"c-{kind}", root=tmp_path / "w", r=redis_client)
    msg = store.publish(*tiny, version=2, step=2)
    if kind == "fs":
        target = tmp_path / "w" / "v2" / "model.safetensors"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    else:
        field = b"model.safetensors:0"
        chunk = bytearray(redis_client.hget(msg.location, field))
        chunk[-1] ^= 0x01
        redis_client.hset(msg.location, field, bytes(chunk))
    with pytest.raises(WeightsCorrupt, match="xxh3_128 mismatch"):
        store.fetch(msg, dest=tmp_path / "mine")


def test_hard_link_fetch_survives_a_prune(tmp_path, tiny):
    model, tok = tiny
    store = make_store("fs", run_id="r", root=tmp_path / "w", r=None, keep_versions=1)
    msg = store.publish(model, tok, version=1, step=1)
    mine = store.fetch(msg, dest=tmp_path / "sampler" / "v1")
    src = tmp_path / "w" / "v1" / "model.safetensors"
    assert (mine / "model.safetensors").stat().st_ino == src.stat().st_ino  # no second copy
    store.publish(model, tok, version=2, step=2)  # prunes v1 out of the store
    assert store.versions() == [2] and not src.exists()
    verify_folder(mine, msg.checksum)
    loaded = AutoModelForCausalLM.from_pretrained(mine)
    assert all(torch.equal(t, model.state_dict()[k]) for k, t in loaded.state_dict().items())


def test_fetch_across_filesystems_copies_and_verifies(tmp_path, tiny, monkeypatch):
    store = make_store("fs", run_id="r", root=tmp_path / "w", r=None)
    msg = store.publish(*tiny, version=1, step=1)

    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    mine = store.fetch(msg, dest=tmp_path / "other")
    assert (mine / "model.safetensors").stat().st_ino != (tmp_path / "w" / "v1" / "model.safetensors").stat().st_ino
    verify_folder(mine, msg.checksum)


class _Announce:
    """Records announcements, checking each version is complete at the moment it is announced."""

    def __init__(self):
        self.versions = []

    def publish(self, msg):
        from pathlib import Path

        verify_folder(Path(msg.location), msg.checksum)
        self.versions.append(msg.version)


def test_background_publish_announces_only_complete_versions_in_order(tmp_path, tiny):
    import copy

    model, tok = copy.deepcopy(tiny[0]), tiny[1]  # mutated below: not the shared fixture
    name = next(iter(model.state_dict()))
    before = model.state_dict()[name].clone()
    store = make_store("fs", run_id="r", root=tmp_path / "w", r=None)
    gate, announce = threading.Event(), _Announce()
    write = store.publish_snapshot

    def slow(*args, **kwargs):
        gate.wait(10)  # the write is held until the test lets it go
        return write(*args, **kwargs)

    store.publish_snapshot = slow
    pub = BackgroundPublisher(store, announce, tok)
    snap = snapshot_model(model, "bfloat16")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # training goes on: the snapshot must not see it
    pub.submit(snap, version=1, step=1)
    assert pub.busy() and announce.versions == [] and store.versions() == []
    gate.set()
    wait_for(lambda: announce.versions == [1], "version 1 announced", timeout=10)
    pub.submit(snapshot_model(model, "bfloat16"), version=2, step=2)
    pub.wait()
    assert announce.versions == [1, 2]
    first = load_file(tmp_path / "w" / "v1" / "model.safetensors")
    assert torch.equal(first[name], before.to(torch.bfloat16))


def test_background_publish_failure_is_counted_and_raised(tmp_path, tiny):
    model, tok = tiny

    class Broken:
        def save_pretrained(self, folder):
            raise OSError("disk full")

    store, announce, failures = make_store("fs", run_id="r", root=tmp_path / "w", r=None), _Announce(), []
    pub = BackgroundPublisher(store, announce, Broken(), on_failure=lambda: failures.append(1))
    pub.submit(snapshot_model(model), version=1, step=1)
    with pytest.raises(PublishFailed, match="disk full"):
        pub.wait()
    assert failures == [1] and announce.versions == [] and store.versions() == []
    pub.wait()  # raised once; the publisher is usable again


def test_a_manifest_entry_without_a_known_digest_is_refused(tmp_path, tiny):
    store = make_store("fs", run_id="r", root=tmp_path / "w", r=None)
    store.publish(*tiny, version=1, step=1)
    folder = tmp_path / "w" / "v1"
    manifest = json.loads((folder / MANIFEST).read_bytes())
    manifest["files"][0]["md5"] = manifest["files"][0].pop("xxh3_128")  # a digest no reader knows
    raw = json.dumps(manifest).encode()
    (folder / MANIFEST).write_bytes(raw)
    with pytest.raises(WeightsCorrupt, match="no digest this reader knows"):
        verify_folder(folder, hashlib.sha256(raw).hexdigest())


def test_background_writes_skip_fsync_until_a_commit_makes_the_version_durable(tmp_path, tiny, monkeypatch):
    import shared.weight_folder as wf
    import shared.weight_snapshot as ws
    import shared.weights as w

    synced = []
    real = wf.fsync_path
    monkeypatch.setattr(wf, "fsync_path", lambda p: (synced.append(p.name), real(p)))
    monkeypatch.setattr(w, "fsync_path", wf.fsync_path)
    monkeypatch.setattr(ws.os, "fsync", lambda fd: synced.append(fd))
    store = make_store("fs", run_id="r", root=tmp_path / "w", r=None)
    msg = store.publish_snapshot(snapshot_model(tiny[0]), tiny[1], version=1, step=1, durable=False)
    assert synced == []  # nothing waited for the disk
    verify_folder(tmp_path / "w" / "v1", msg.checksum)  # complete and verified all the same
    store.make_durable(1)
    assert set(synced) >= {"model.safetensors", MANIFEST, "v1", "w"}
    synced.clear()
    store.publish_snapshot(snapshot_model(tiny[0]), tiny[1], version=2, step=2)  # the default: durable
    assert len(synced) >= 3
