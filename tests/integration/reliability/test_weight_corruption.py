"""A damaged weight version (truncated file, flipped byte, missing chunk, tampered manifest) in
either store is refused by checksum; the sampler keeps serving the version it had, says so in
its log and counts it; the next good version is taken. Real Redis, real tiny model."""

import logging
import signal
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from services.sampler.backends import SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.weights_follower import WeightsFollower
from shared.broadcast import Broadcast
from shared.keys import RunKeys
from shared.metrics import sampler_metrics
from shared.redis_client import connect
from shared.weights import make_store
from tests.helpers.tiny_model import build_tiny_model

GREEDY = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
RUN = "wc"


def _publish(r, store, model_dir: Path, version: int):
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    torch.manual_seed(100 + version)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    msg = store.publish(model, AutoTokenizer.from_pretrained(str(model_dir)), version, version)
    return msg


def _truncate(r, msg):
    path = Path(msg.location) / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(r, msg):
    path = Path(msg.location) / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _redis_truncate(r, msg):
    r.hset(msg.location, "model.safetensors:0", r.hget(msg.location, "model.safetensors:0")[:1000])


def _redis_drop_chunk(r, msg):
    r.hdel(msg.location, "model.safetensors:0")


def _redis_manifest(r, msg):
    r.hset(msg.location, "dashrl-manifest.json", r.hget(msg.location, "dashrl-manifest.json") + b" ")


@pytest.mark.parametrize("kind,damage", [("fs", _truncate), ("fs", _flip), ("redis", _redis_truncate),
                                         ("redis", _redis_drop_chunk), ("redis", _redis_manifest)],
                         ids=["fs-truncated", "fs-flipped-byte", "redis-truncated", "redis-missing-chunk",
                              "redis-tampered-manifest"])
def test_damaged_version_is_refused_and_the_old_one_kept(redis_client, tmp_path, caplog, kind, damage):
    model_dir = build_tiny_model(tmp_path / "model")
    store = make_store(kind, run_id=RUN, root=tmp_path / "weights", r=redis_client)
    announce = Broadcast(redis_client, RunKeys(RUN).weights)
    backend = HFBackend(model_dir, dtype="float32")
    metrics, reg = sampler_metrics()
    follower = WeightsFollower(redis_client, RUN, store, backend, tmp_path / "local", metrics)

    announce.publish(_publish(redis_client, store, model_dir, 1))
    assert follower.poll() and follower.version == 1
    served = backend.generate([[5, 6, 7]], GREEDY)[0][0].token_ids.tolist()

    bad = _publish(redis_client, store, model_dir, 2)
    damage(redis_client, bad)  # damaged after it was written (disk, a partial copy, a bad actor)
    announce.publish(bad)
    with caplog.at_level(logging.ERROR, logger="services.sampler.weights_follower"):
        assert not follower.poll()
    assert follower.version == 1 and reg.get_sample_value("dashrl_policy_version") == 1
    assert reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "checksum"}) == 1
    assert any("refusing weight version 2 (checksum)" in rec.getMessage() for rec in caplog.records)
    assert backend.generate([[5, 6, 7]], GREEDY)[0][0].token_ids.tolist() == served  # still version 1
    assert not (tmp_path / "local" / "v2").exists()  # the bad copy is not left behind

    announce.publish(_publish(redis_client, store, model_dir, 3))
    assert follower.poll() and follower.version == 3


def test_hung_weight_fetch_is_bounded_and_refused_loudly(redis_client, fresh_redis, tmp_path, caplog):
    """The weight store's Redis stops answering (SIGSTOP) mid-sync: the fetch gives up after
    fetch_timeout_s, the version is refused with reason "timeout", the old version keeps serving."""
    model_dir = build_tiny_model(tmp_path / "model")
    store_r = connect(fresh_redis.url)  # the services' client: 10 s socket timeout
    store = make_store("redis", run_id=RUN, root=tmp_path / "weights", r=store_r)
    announce = Broadcast(redis_client, RunKeys(RUN).weights)  # announcements stay reachable
    backend = HFBackend(model_dir, dtype="float32")
    metrics, reg = sampler_metrics()
    follower = WeightsFollower(redis_client, RUN, store, backend, tmp_path / "local", metrics, fetch_timeout_s=1.0)
    announce.publish(_publish(store_r, store, model_dir, 1))
    assert follower.poll() and follower.version == 1

    announce.publish(_publish(store_r, store, model_dir, 2))
    fresh_redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="services.sampler.weights_follower"):
            assert not follower.poll()
        waited = time.monotonic() - t0
    finally:
        fresh_redis.proc.send_signal(signal.SIGCONT)
    assert 1.0 <= waited < 5.0, waited
    assert follower.version == 1
    assert reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "timeout"}) == 1
    assert any("refusing weight version 2 (timeout)" in r.getMessage() and "took over 1s" in r.getMessage()
               for r in caplog.records)
    announce.publish(_publish(store_r, store, model_dir, 3))
    assert follower.poll() and follower.version == 3  # Redis is back: the next version is taken
