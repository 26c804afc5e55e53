"""The wired collective push in one process (gloo ranks in two threads, real Redis): the
learner's WeightPusher announces and pushes, the sampler's PushReceiver receives in the
background, and the WeightsFollower serves the pushed version between calls, stamping it."""

from __future__ import annotations

import time

import torch
from prometheus_client import CollectorRegistry
from safetensors.torch import load_file

from services.learner.weight_pusher import WeightPusher
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.push_receiver import PushReceiver
from services.sampler.weights_follower import WeightsFollower
from shared.broadcast import Broadcast
from shared.keys import RunKeys
from shared.metrics import weight_push_metrics
from shared.protocol import WeightsPushed
from shared.weights_config import BroadcastTransport
from tests.conftest import free_port
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model


def test_pushed_version_is_served_and_stamped(redis_client, tmp_path):
    old, new = build_tiny_model(tmp_path / "old", seed=0), build_tiny_model(tmp_path / "new", seed=1)
    cfg = BroadcastTransport(port=free_port(), samplers=1, timeout_s=5.0, bucket_mb=1)
    stream = RunKeys("push-wired").weights_push
    learner_metrics, sampler_metrics = weight_push_metrics(CollectorRegistry()), weight_push_metrics(CollectorRegistry())
    pusher = WeightPusher(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), "push-wired", learner_metrics)
    receiver = PushReceiver(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), sampler_metrics)
    backend = HFBackend(old, dtype="float32")
    follower = WeightsFollower(redis_client, "push-wired", store=None, backend=backend, local_dir=tmp_path / "local",
                               pushed=receiver)
    try:
        wait_for(lambda: pusher.group is not None and receiver.group is not None, "generation 0 formed", 30)
        named = list(load_file(str(new / "model.safetensors")).items())
        assert pusher.push(1, 1, named)
        wait_for(lambda: follower.poll(), "the pushed version served", 30)
        assert follower.version == 1
        assert follower.last_pause_s is not None and follower.last_pause_s < follower.last_sync_s + 1.0  # the load only
        params = dict(backend.model.named_parameters())
        assert all(torch.equal(params[n], t) for n, t in named)
        assert learner_metrics.pushes._value.get() == 1 and sampler_metrics.pushes._value.get() == 1
    finally:
        receiver.close()
        pusher.close()


def test_failed_push_breaks_the_generation_and_the_next_one_forms(redis_client, tmp_path):
    new = build_tiny_model(tmp_path / "new", seed=1)
    cfg = BroadcastTransport(port=free_port(), samplers=1, timeout_s=2.0, bucket_mb=1)
    stream = RunKeys("push-reform").weights_push
    learner_metrics, sampler_metrics = weight_push_metrics(CollectorRegistry()), weight_push_metrics(CollectorRegistry())
    pusher = WeightPusher(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), "push-reform", learner_metrics)
    first = PushReceiver(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), sampler_metrics)
    named = list(load_file(str(new / "model.safetensors")).items())
    second = None
    try:
        wait_for(lambda: pusher.group is not None and first.group is not None, "generation 0 formed", 30)
        first.close()  # the sampler's receiver is gone: it will never take part in v1
        start = time.monotonic()
        assert not pusher.push(1, 1, named)
        assert time.monotonic() - start < 3 * cfg.timeout_s
        assert learner_metrics.fallbacks.labels(reason="timeout")._value.get() == 1
        second = PushReceiver(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), sampler_metrics)
        wait_for(lambda: pusher.group is not None and pusher.group.generation >= 1, "a later generation formed", 30)
        assert pusher.push(2, 2, named)
        wait_for(lambda: second.take(1), "v2 received in the new generation", 30)
    finally:
        for receiver in (first, second):
            if receiver:
                receiver.close()
        pusher.close()


def test_a_backend_without_load_tensors_takes_no_seat(redis_client):
    """vLLM cannot load pushed tensors yet: its sampler must not hold a seat it would never
    fill, and says so in a metric (a plain object stands in for the backend: pure logic)."""
    from types import SimpleNamespace

    from services.sampler.parts import _push_receiver
    from shared.config import RunConfig
    from shared.metrics import sampler_metrics

    cfg = RunConfig.model_validate({"model": {"path": "unused"},
                                    "weights": {"transport": {"kind": "broadcast", "port": free_port()}}})
    metrics, _ = sampler_metrics(CollectorRegistry())
    backend = SimpleNamespace(loads_tensors=False, name="vllm")
    assert _push_receiver(cfg, redis_client, RunKeys("no-seat"), metrics, backend) is None
    assert metrics.push.fallbacks.labels(reason="backend")._value.get() == 1


def test_a_taken_version_stays_intact_while_newer_ones_land(redis_client, tmp_path):
    """The receiver reuses two slots: versions pushed while the follower still loads one land in
    the other slot (the newest superseding the ready one), never in the one being loaded."""
    cfg = BroadcastTransport(port=free_port(), samplers=1, timeout_s=5.0, bucket_mb=1)
    stream = RunKeys("push-slots").weights_push
    pusher = WeightPusher(cfg, Broadcast(redis_client, stream, expect=WeightsPushed), "push-slots",
                          weight_push_metrics(CollectorRegistry()))
    receiver = PushReceiver(cfg, Broadcast(redis_client, stream, expect=WeightsPushed),
                            weight_push_metrics(CollectorRegistry()))
    versions = {v: [("w", torch.full((300, 300), float(v))), ("b", torch.arange(7.0) * v)] for v in (1, 2, 3, 4)}
    try:
        wait_for(lambda: pusher.group is not None and receiver.group is not None, "generation 0 formed", 30)
        assert pusher.push(1, 1, versions[1])
        taken = wait_for(lambda: receiver.take(0), "v1 received", 30)
        for v in (2, 3):  # the follower is still loading v1
            assert pusher.push(v, v, versions[v])
        msg, newest = wait_for(lambda: receiver.take(1), "v3 ready", 30)
        assert msg.version == 3 and all(torch.equal(t, dict(versions[3])[n]) for n, t in newest)
        assert all(torch.equal(t, dict(versions[1])[n]) for n, t in taken[1])  # untouched by v2, v3
        receiver.release()
        assert pusher.push(4, 4, versions[4])
        msg, fourth = wait_for(lambda: receiver.take(3), "v4 ready", 30)
        assert msg.version == 4 and all(torch.equal(t, dict(versions[4])[n]) for n, t in fourth)
    finally:
        receiver.close()
        pusher.close()
