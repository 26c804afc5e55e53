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
