"""shared/protocol.py: round trips for every message kind (hypothesis) and a decoder fuzz.

The decoder's contract: any input either decodes to a valid message or raises ProtocolError,
never anything else.
"""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import protocol
from shared.protocol import (
    SCHEMA_VERSION, FinishReason, Heartbeat, LearnerReport, ProtocolError, RolloutBatch, RunAssignment, Sample,
    SamplerReport, StopRun, WeightsPublished, decode, encode,
)

text = st.text(max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
token = st.integers(0, 2**31 - 1)


@st.composite
def samples(draw) -> Sample:
    completion = draw(st.lists(token, max_size=24))
    return Sample(
        prompt_ids=np.array(draw(st.lists(token, max_size=16)), dtype=np.int32),
        completion_ids=np.array(completion, dtype=np.int32),
        logprobs=np.array(draw(st.lists(st.floats(-1e4, 0.0, width=32), min_size=len(completion),
                                        max_size=len(completion))), dtype=np.float32),
        reward=draw(finite32),
        advantage=draw(finite32),
        group_id=draw(st.integers(-(2**31), 2**31 - 1)),
        finish_reason=draw(st.sampled_from(FinishReason)),
    )


rollout_batches = st.builds(
    lambda ss, **meta: RolloutBatch.from_samples(ss, **meta),
    st.lists(samples(), max_size=12),
    run_id=text, batch_id=text, sampler_id=text, policy_version=st.integers(0, 2**63 - 1),
    created_at=finite, stats=st.dictionaries(text, finite, max_size=8),
)
weights_published = st.builds(
    WeightsPublished, run_id=text, version=st.integers(0, 2**40), location=text,
    format=st.sampled_from(WeightsPublished.FORMATS), checksum=text, byte_size=st.integers(0, 2**50),
    step=st.integers(0, 2**40), published_at=finite,
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
run_assignments = st.builds(RunAssignment, run_id=text, config=st.dictionaries(text, json_like, max_size=6),
                            role=st.sampled_from(["sampler", "learner", "any"]))
stop_runs = st.builds(StopRun, run_id=text, reason=text)
counts = st.integers(0, 2**40)
maybe = st.none() | finite
sampler_reports = st.builds(
    SamplerReport, policy_version=counts, calls=counts, samples=counts, samples_kept=counts, batches=counts,
    tokens_per_s=maybe, reward_mean=maybe, kept_fraction=maybe, weight_sync_s=maybe, eval_accuracy=maybe,
    eval_version=st.none() | counts, evals=st.dictionaries(text, finite, max_size=4),
    stalled=st.dictionaries(text, finite, max_size=1))
learner_reports = st.builds(LearnerReport, policy_version=counts, step=counts, samples=counts, loss=maybe,
                            grad_norm=maybe, staleness=maybe, reward_mean=maybe)
heartbeats = st.builds(Heartbeat, run_id=text, instance_id=text, state=text, sent_at=finite,
                       report=sampler_reports | learner_reports)
messages = rollout_batches | weights_published | run_assignments | stop_runs | heartbeats


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f.name
        else:
            assert x == y, f.name


@given(messages)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_every_kind(msg):
    back = decode(encode(msg))
    assert_same(msg, back)
    assert decode(encode(back), expect=type(msg)) is not None


@given(st.lists(samples(), min_size=1, max_size=8))
def test_rollout_batch_samples_round_trip(ss):
    batch = decode(encode(RolloutBatch.from_samples(ss, run_id="r", batch_id="b", sampler_id="s",
                                                    policy_version=1, created_at=0.0)))
    assert len(batch) == len(ss)
    for want, got in zip(ss, batch.samples()):
        assert want.prompt_ids.tolist() == got.prompt_ids.tolist()
        assert want.completion_ids.tolist() == got.completion_ids.tolist()
        assert want.logprobs.tobytes() == got.logprobs.tobytes()
        assert (np.float32(want.reward), want.group_id, want.finish_reason) == (got.reward, got.group_id, got.finish_reason)
    assert batch.num_tokens == sum(len(s.prompt_ids) + len(s.completion_ids) for s in ss)


# ------------------------------------------------------------------------------------- fuzz

def decodes_or_protocol_error(data) -> None:
    """The contract: a valid message, or ProtocolError; any other exception fails the test."""
    try:
        msg = decode(data)
    except ProtocolError:
        return
    assert isinstance(msg, tuple(protocol.KINDS.values()))
    assert_same(msg, decode(encode(msg)))  # whatever it accepted, it can also send


@given(st.binary(max_size=4096))
@settings(max_examples=500)
def test_random_bytes(data):
    decodes_or_protocol_error(data)


@given(messages, st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_truncated_messages_are_refused(msg, data):
    raw = encode(msg)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ProtocolError):
        decode(raw[:cut])


@given(messages, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_flipped_bytes(msg, data):
    raw = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    decodes_or_protocol_error(bytes(raw))


@given(messages, text, json_like)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_field_replaced_by_anything(msg, _unused, value):
    body = msgpack.unpackb(encode(msg), raw=False)
    for key in list(body):
        mutated = dict(body, **{key: value})
        decodes_or_protocol_error(msgpack.packb(mutated, use_bin_type=True))


@given(messages, st.data())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_any_field_missing_is_refused(msg, data):
    body = msgpack.unpackb(encode(msg), raw=False)
    key = data.draw(st.sampled_from(sorted(body)))
    del body[key]
    with pytest.raises(ProtocolError, match=key):
        decode(msgpack.packb(body, use_bin_type=True))


def rollout_body(n=3, **changes):
    ss = [Sample(np.arange(4), np.arange(5), np.full(5, -1.0, np.float32), 1.0, 0.5, 0) for _ in range(n)]
    batch = RolloutBatch.from_samples(ss, run_id="r", batch_id="b", sampler_id="s", policy_version=0, created_at=0.0)
    body = msgpack.unpackb(encode(batch), raw=False)
    body.update(changes)
    return msgpack.packb(body, use_bin_type=True)


def i32(*xs) -> bytes:
    return np.array(xs, dtype="<i4").tobytes()


def f32(*xs) -> bytes:
    return np.array(xs, dtype="<f4").tobytes()


@pytest.mark.parametrize("changes, match", [
    ({"schema_version": SCHEMA_VERSION + 1}, f"schema_version {SCHEMA_VERSION + 1} not supported"),
    ({"schema_version": "1"}, "schema_version '1' not supported"),
    ({"schema_version": True}, "schema_version True not supported"),
    ({"schema_version": float(SCHEMA_VERSION)}, f"schema_version {float(SCHEMA_VERSION)} not supported"),
    ({"kind": "rollout_batch_v2"}, "unknown message kind"),
    ({"kind": 7}, "kind: expected a string"),
    ({"rewards": [1.0, 1.0, 1.0]}, "rewards: expected packed"),
    ({"rewards": f32(1, 1, 1)[:-1]}, "not a whole number"),
    ({"rewards": np.ones(3, "<f8").tobytes()}, "rewards: expected 3 items"),  # float64, not float32
    ({"rewards": f32(1, 1)}, "rewards: expected 3 items"),
    ({"rewards": f32(1, float("nan"), 1)}, "rewards: contains NaN"),
    ({"advantages": f32(float("inf"), 0, 0)}, "advantages: contains NaN or infinity"),
    ({"logprobs": f32(*([-1.0] * 14 + [0.5]))}, "log-probabilities must be <= 0"),
    ({"completion_ids": i32(*([1] * 14 + [-3]))}, "negative token id"),
    ({"finish_reasons": bytes([0, 1, 9])}, "unknown finish reason"),
    ({"prompt_lens": i32(4, 4, 2**30)}, r"lengths must lie in"),
    ({"completion_lens": i32(5, -5, 15)}, r"lengths must lie in"),
    ({"completion_lens": i32(5, 5, 6)}, "completion_ids: expected 16 items"),
    ({"prompt_lens": i32(*([0] * (protocol.MAX_SAMPLES + 1)))}, "exceeds limit"),
    ({"policy_version": -1}, "policy_version: must be >= 0"),
    ({"created_at": float("nan")}, "created_at: expected a finite number"),
    ({"batch_id": "x" * 5000}, "batch_id: expected a string of at most 4096"),
    ({"stats": {"a": float("inf")}}, "stats: expected at most 256 finite numbers"),
    ({"stats": {str(i): 1.0 for i in range(300)}}, "stats: expected at most 256"),
    ({"surprise": 1}, r"unknown fields \['surprise'\]"),
])
def test_invalid_rollout_batches(changes, match):
    with pytest.raises(ProtocolError, match=match):
        decode(rollout_body(**changes))
    decode(rollout_body())  # the unmodified body is fine


def test_expect_and_wrong_kind():
    raw = encode(StopRun("r", "x"))
    assert decode(raw, expect=StopRun).reason == "x"
    with pytest.raises(ProtocolError, match="expected rollout_batch, got stop_run"):
        decode(raw, expect=RolloutBatch)


@pytest.mark.parametrize("data", [None, "a string", 3, [b"x"], msgpack.packb([1, 2]), msgpack.packb(None),
                                  msgpack.packb({1: 2}), msgpack.packb({b"kind": b"stop_run"}), b"", b"\xc1"])
def test_not_a_message(data):
    with pytest.raises(ProtocolError):
        decode(data)


def test_float_map_keys_must_be_strings():
    with pytest.raises(ProtocolError, match="stats"):
        decode(rollout_body(stats={b"raw-bytes-key": 1.0}))


def test_message_size_limit(monkeypatch):
    raw = encode(StopRun("r", "x" * 200))
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 100)
    with pytest.raises(ProtocolError, match="exceeds limit 100"):
        decode(raw)


def test_unknown_weights_format():
    body = msgpack.unpackb(encode(WeightsPublished("r", 1, "/x", "safetensors-dir", "c", 1, 1, 0.0)), raw=False)
    body["format"] = "pickle"
    with pytest.raises(ProtocolError, match="unknown format 'pickle'"):
        decode(msgpack.packb(body, use_bin_type=True))
