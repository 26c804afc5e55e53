"""Weight store: atomic publish, verified fetch (fs and Redis), pruning, tied-embedding flag."""

import hashlib
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.keys import RunKeys
from shared.weights import MANIFEST, RedisWeightStore, WeightsCorrupt, make_store, tied_embeddings
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def _same_weights(folder, model):
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    ref = model.state_dict()
    return all(torch.equal(t, ref[k]) for k, t in loaded.state_dict().items())


def test_fs_publish_fetch_roundtrip(tmp_path, tiny):
    model, tok = tiny
    store = make_store("fs", run_id="r1", root=tmp_path / "weights", r=None)
    msg = store.publish(model, tok, version=1, step=1)
    folder = tmp_path / "weights" / "v1"
    assert msg.location == str(folder) and msg.format == "safetensors-dir" and msg.version == 1
    assert msg.checksum == hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert not list((tmp_path / "weights").glob(".tmp-*"))
    assert store.fetch(msg) == folder
    copy = store.fetch(msg, dest=tmp_path / "copy")
    assert _same_weights(copy, model)
    assert AutoTokenizer.from_pretrained(copy).decode([5, 6]) == tok.decode([5, 6])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_fs_fetch_refuses_damaged_versions(tmp_path, tiny, damage):
    store = make_store("fs", run_id="r1", root=tmp_path, r=None)
    msg = store.publish(*tiny, version=3, step=3)
    target = tmp_path / "v3" / "model.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[:-10]))
    elif damage == "delete":
        target.unlink()
    else:
        (tmp_path / "v3" / MANIFEST).write_text("{}")
    with pytest.raises(WeightsCorrupt):
        store.fetch(msg)


def test_fs_failed_publish_leaves_no_version(tmp_path, tiny):
    class Broken:
        def save_pretrained(self, folder):
            raise OSError("disk full")

    store = make_store("fs", run_id="r1", root=tmp_path, r=None)
    with pytest.raises(OSError):
        store.publish(tiny[0], Broken(), version=1, step=1)
    assert store.versions() == []


def test_fs_prune_and_republish(tmp_path, tiny):
    model, tok = tiny
    store = make_store("fs", run_id="r1", root=tmp_path, r=None, keep_versions=2)
    msgs = [store.publish(model, tok, version=v, step=v) for v in (1, 2, 3)]
    assert store.versions() == [2, 3]
    with pytest.raises(WeightsCorrupt):
        store.fetch(msgs[0])
    # re-publishing a version (after a resume) replaces it; the old announcement no longer verifies
    new = store.publish(model, tok, version=3, step=30)
    assert new.checksum != msgs[2].checksum
    store.fetch(new)
    with pytest.raises(WeightsCorrupt):
        store.fetch(msgs[2])


def test_redis_store_roundtrip_chunked(tmp_path, tiny, redis_client):
    model, tok = tiny
    store = RedisWeightStore("r2", tmp_path, redis_client, keep_versions=2, chunk_bytes=50_000)
    msg = store.publish(model, tok, version=1, step=1)
    key = RunKeys("r2").weight_blob(1)
    assert msg.location == key and msg.format == "redis-chunks"
    assert redis_client.hlen(key) > 8  # the ~400 KB safetensors file went in several chunks
    assert not redis_client.exists(key + ":tmp")
    folder = store.fetch(msg, dest=tmp_path / "out")
    assert _same_weights(folder, model)
    assert not tied_embeddings(folder)
    for v in (2, 3):
        store.publish(model, tok, version=v, step=v)
    assert store.versions() == [2, 3]
    with pytest.raises(WeightsCorrupt, match="not in Redis"):
        store.fetch(msg)


def test_redis_store_refuses_damaged_chunks(tmp_path, tiny, redis_client):
    store = RedisWeightStore("r3", tmp_path, redis_client, chunk_bytes=50_000)
    msg = store.publish(*tiny, version=1, step=1)
    field = "model.safetensors:2"
    chunk = bytearray(redis_client.hget(msg.location, field))
    chunk[7] ^= 1
    redis_client.hset(msg.location, field, bytes(chunk))
    with pytest.raises(WeightsCorrupt, match="xxh3_128 mismatch"):
        store.fetch(msg, dest=tmp_path / "a")
    redis_client.hdel(msg.location, field)
    with pytest.raises(WeightsCorrupt, match="missing"):
        store.fetch(msg, dest=tmp_path / "b")
    with pytest.raises(WeightsCorrupt):  # a message for another store kind
        make_store("fs", run_id="r3", root=tmp_path, r=None).fetch(msg)


def test_tied_embeddings_flag(tmp_path):
    tied_dir = build_tiny_model(tmp_path / "tied", tie_word_embeddings=True)
    assert tied_embeddings(tied_dir) and not tied_embeddings(build_tiny_model(tmp_path / "untied"))
    model = AutoModelForCausalLM.from_pretrained(tied_dir)
    msg = make_store("fs", run_id="r4", root=tmp_path / "w", r=None).publish(model, None, version=1, step=1)
    manifest = json.loads((tmp_path / "w" / "v1" / MANIFEST).read_text())
    assert manifest["tie_word_embeddings"] is True and tied_embeddings(msg.location)
    config_only = tmp_path / "cfg"
    config_only.mkdir()
    (config_only / "config.json").write_text(json.dumps({"text_config": {"tie_word_embeddings": True}}))
    assert tied_embeddings(config_only)


def _file_dtypes(folder) -> set[torch.dtype]:
    from safetensors import safe_open

    dtypes = set()
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            dtypes |= {f.get_tensor(name).dtype for name in f.keys()}
    return dtypes


@pytest.mark.parametrize("store_kind", ["fs", "redis"])
@pytest.mark.parametrize("tied", [False, True])
def test_publish_in_the_serving_dtype(tmp_path, redis_client, store_kind, tied):
    """float32 master weights published as bfloat16: tensors, config.json and manifest say so,
    the bytes halve, the master is untouched, a tied output layer stays one (absent) tensor."""
    from pathlib import Path

    folder = build_tiny_model(tmp_path / "m", tie_word_embeddings=tied)
    model = AutoModelForCausalLM.from_pretrained(folder)
    store = make_store(store_kind, run_id=f"dt-{store_kind}-{tied}", root=tmp_path / "w", r=redis_client)
    full = store.fetch(store.publish(model, None, version=1, step=1), dest=tmp_path / "f32")
    half = store.fetch(store.publish(model, None, version=2, step=2, dtype="bfloat16"), dest=tmp_path / "bf16")
    assert _file_dtypes(Path(full)) == {torch.float32} and _file_dtypes(Path(half)) == {torch.bfloat16}
    assert json.loads((half / "config.json").read_text())["dtype"] == "bfloat16"
    manifest = json.loads((half / MANIFEST).read_text())
    assert manifest["dtype"] == "bfloat16" and manifest["tie_word_embeddings"] is tied
    size = {p: sum(f.stat().st_size for f in p.glob("*.safetensors")) for p in (full, half)}
    assert 0.45 < size[half] / size[full] < 0.55
    assert next(model.parameters()).dtype == torch.float32 and str(model.config.dtype).endswith("float32")
    loaded = AutoModelForCausalLM.from_pretrained(half)  # `dtype` left to the folder: bfloat16
    assert loaded.dtype == torch.bfloat16
    master = model.state_dict()
    assert all(torch.equal(t, master[k].to(torch.bfloat16)) for k, t in loaded.state_dict().items())
    if tied:
        from safetensors import safe_open

        with safe_open(str(half / "model.safetensors"), framework="pt") as f:
            assert "lm_head.weight" not in set(f.keys())


def test_redis_store_waits_out_an_outage(tmp_path, tiny, fresh_redis):
    """Redis down while a version is written: every chunk write is retried (counted), and the
    version lands whole and fetches verified once Redis is back."""
    import threading
    import time

    from prometheus_client import CollectorRegistry

    from shared.metrics import stream_metrics
    from shared.redis_client import connect

    model, tok = tiny
    metrics = stream_metrics(CollectorRegistry(), "learner")
    r = connect(fresh_redis.url, socket_timeout=2)
    store = make_store("redis", run_id="out", root=tmp_path, r=r, metrics=metrics)
    fresh_redis.stop()

    def bring_back():  # once a write has failed (and been counted)
        deadline = time.monotonic() + 20
        while metrics.redis_errors._value.get() < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        fresh_redis.start()

    t = threading.Thread(target=bring_back, daemon=True)
    t.start()
    msg = store.publish(model, tok, version=1, step=1)
    t.join(20)
    assert metrics.redis_errors._value.get() >= 1
    assert store.versions() == [1]
    assert _same_weights(store.fetch(msg, dest=tmp_path / "got"), model)
