"""The collective weight push (shared.weight_push) across real processes on loopback gloo:
bit-identical delivery the transformers backend serves, a stalled peer timing out within its
bound with the store fallback counted, and a late joiner left to the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry
from safetensors.torch import load_file

from services.sampler.backends.base import SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.pushed_weights import join_push_group
from shared.metrics import weight_push_metrics
from shared.protocol import WeightsPushed, encode
from shared.weight_push import PushFailed, bucket_plan, checksum, claim_rank, form_group, open_store, push_version
from shared.weights_config import BroadcastTransport
from tests.conftest import free_port
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[3]
BOUND = timedelta(seconds=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """The sampler's starting weights and the learner's new version (another seed)."""
    base = tmp_path_factory.mktemp("push")
    return build_tiny_model(base / "old", seed=0), build_tiny_model(base / "new", seed=1)


def _peer(port: int, old: Path, new: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.push_peer", str(port), str(old), str(new),
                             str(out), *extra], cwd=ROOT, stderr=open(out / "peer.log", "w"))


def _learner(port: int, peer: subprocess.Popen):
    store = open_store("127.0.0.1", port, is_learner=True, timeout=timedelta(seconds=30))
    # the peer takes its seat once its backend is built; only then do both connect (within BOUND)
    wait_for(lambda: store.check(["gen0/seats"]), "the sampler's seat", 60, procs=peer)
    return store, form_group(store, 0, 0, 2, BOUND)


def _announce(store, named, version: int = 1) -> None:
    msg = WeightsPushed("r", version, 0, checksum(named), sum(t.nbytes for _, t in named), 1, time.time())
    store.set("announce", encode(msg))


@pytest.mark.process
def test_push_is_bit_identical_and_served(models, tmp_path):
    old, new = models
    port = free_port()
    peer = _peer(port, old, new, tmp_path)
    store, group = _learner(port, peer)
    named = list(load_file(str(new / "model.safetensors")).items())
    _announce(store, named)
    report = push_version(group, named, 1, bucket_bytes=1 << 12)  # small buckets: many of them
    assert report.byte_size == sum(t.nbytes for _, t in named)
    wait_for(lambda: (tmp_path / "result.json").exists(), "peer result", 60, procs=peer, clean_exit_ok=True,
             log=tmp_path / "peer.log")
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["fallbacks"] == {}
    served = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(served[n], t) for n, t in named)
    fresh = HFBackend(new, dtype="float32")
    lp = fresh.generate([[5, 6, 7, 8, 9]], SamplingSettings(temperature=0, max_new_tokens=8))[0][0].logprobs
    # the weights are bit-identical (above); the peer's forward may sum in another order (its own
    # thread count), which moved a log-prob by 5e-7 on one 2-vCPU box
    assert result["logprobs"] == pytest.approx(lp.tolist(), abs=1e-5)


@pytest.mark.process
def test_stalled_sampler_times_the_push_out(models, tmp_path):
    old, new = models
    port = free_port()
    peer = _peer(port, old, new, tmp_path, "--stall")
    try:
        _, group = _learner(port, peer)
        named = list(load_file(str(new / "model.safetensors")).items())
        start = time.monotonic()
        with pytest.raises(PushFailed) as err:
            push_version(group, named, 1, bucket_bytes=1 << 12)
        assert time.monotonic() - start < BOUND.total_seconds() * 3
        assert err.value.reason in ("timeout", "broken") and group.broken
    finally:
        peer.kill()
        peer.wait()


@pytest.mark.process
def test_stalled_learner_makes_the_sampler_fall_back_to_the_store(models, tmp_path):
    old, new = models
    port = free_port()
    peer = _peer(port, old, new, tmp_path)
    try:
        store, _ = _learner(port, peer)
        _announce(store, list(load_file(str(new / "model.safetensors")).items()))  # ...and never broadcast
        wait_for(lambda: (tmp_path / "result.json").exists(), "peer result", 60, procs=peer, clean_exit_ok=True,
                 log=tmp_path / "peer.log")
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["fallbacks"] == {"timeout": 1.0}
        served = load_file(str(tmp_path / "model.safetensors"))
        assert all(torch.equal(served[n], t) for n, t in load_file(str(new / "model.safetensors")).items())
    finally:
        peer.kill()
        peer.wait()


def test_late_joiner_finds_no_seat_and_follows_the_store():
    port = free_port()
    store = open_store("127.0.0.1", port, is_learner=True, timeout=BOUND)
    assert claim_rank(store, 0, 2) == 1  # the one seat of a learner + 1 sampler group
    metrics = weight_push_metrics(CollectorRegistry())
    assert join_push_group(BroadcastTransport(port=port, samplers=1, timeout_s=3), 0, metrics) is None
    assert metrics.fallbacks.labels(reason="no_seat")._value.get() == 1
    assert claim_rank(store, 1, 2) == 1  # the next generation has room again


def test_checksum_and_bucket_plan():
    a, b = torch.arange(10, dtype=torch.float32), torch.ones(3, dtype=torch.bfloat16)
    assert checksum([("a", a), ("b", b)]) != checksum([("b", b), ("a", a)])
    flipped = a.clone()
    flipped[3] = 3.0000002
    assert checksum([("a", a)]) != checksum([("a", flipped)])
    from shared.push_layout import TensorSpec, layout
    specs = [TensorSpec("x", (4,), "float32"), TensorSpec("y", (2,), "bfloat16"), TensorSpec("z", (8,), "float32")]
    assert bucket_plan(specs, 16) == [[0], [2], [1]]
    assert bucket_plan(specs, 1 << 10) == [[0, 2], [1]]
    # every tensor starts 64-byte aligned, so the receiver sums it as int64 words in place
    assert [b.members for b in layout(specs, 1 << 10)] == [((0, 0), (2, 16)), ((1, 0),)]


def test_receiver_views_sum_in_place_and_match_the_sender():
    """Odd-sized bf16 tensors packed and unpacked through the layout: same bytes, same checksum,
    and every view 8-byte aligned (no copy to sum it)."""
    from shared.push_layout import SendRing, layout, specs_of, views
    named = [(f"t{i}", torch.randn(n).to(torch.bfloat16)) for i, n in enumerate((3, 17, 1, 64, 5))]
    specs = specs_of(named)
    ring, got = SendRing(torch.device("cpu")), {}
    ring.reserve(layout(specs, 64))
    for k, bucket in enumerate(layout(specs, 64)):
        flat = ring.buffer(k, bucket)
        SendRing.pack(flat, bucket, named)
        for i, view in views(flat.clone(), bucket, specs):
            assert view.data_ptr() % 8 == 0
            got[i] = view
    assert all(torch.equal(got[i], t) for i, (_, t) in enumerate(named))
    assert checksum([(n, got[i]) for i, (n, _) in enumerate(named)]) == checksum(named)
