"""Malformed rollout-stream payloads, each tagged with the kind of damage and a pattern its
dead-letter reason must contain. Used by the bad-input reliability test."""

from __future__ import annotations

import random
from typing import Callable

import msgpack
import numpy as np

from shared.protocol import SCHEMA_VERSION, ErrorCategory, RolloutBatch, encode


def _body(batch: RolloutBatch) -> dict:
    return msgpack.unpackb(encode(batch), raw=False)


def _pack(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def _random_bytes(rng: random.Random, _good: RolloutBatch) -> bytes:
    return rng.randbytes(rng.randint(1, 64))


def _wrong_schema(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    body["schema_version"] = SCHEMA_VERSION + rng.randint(1, 50)
    return _pack(body)


def _wrong_shape(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    name = rng.choice(["rewards", "advantages", "group_ids", "logprobs", "completion_ids"])
    body[name] = body[name] + b"\0\0\0\0"  # one item too many
    return _pack(body)


def _nan_reward(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    rewards = np.frombuffer(body["rewards"], dtype="<f4").copy()
    rewards[rng.randrange(len(rewards))] = rng.choice([np.nan, np.inf, -np.inf])
    body["rewards"] = rewards.tobytes()
    return _pack(body)


def _absurd_length(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    lens = np.frombuffer(body["completion_lens"], dtype="<i4").copy()
    lens[0] = rng.choice([1 << 30, -5])
    body["completion_lens"] = lens.tobytes()
    return _pack(body)


def _wrong_kind(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    body["kind"] = rng.choice(["heartbeat", "weights_published", "pickle", ""])
    return _pack(body)


def _missing_field(rng: random.Random, good: RolloutBatch) -> bytes:
    body = _body(good)
    del body[rng.choice(["batch_id", "policy_version", "rewards", "prompt_lens"])]
    return _pack(body)


# kind -> (payload builder, a regex its dead-letter reason must match, the ProtocolError
# categories it may be refused with)
KINDS: dict[str, tuple[Callable[[random.Random, RolloutBatch], bytes], str, set[ErrorCategory]]] = {
    # random bytes may even decode to a number (undecodable) or a map (without a kind: invalid)
    "random_bytes": (_random_bytes, "", {ErrorCategory.UNDECODABLE, ErrorCategory.INVALID}),
    "wrong_schema": (_wrong_schema, "schema_version", {ErrorCategory.SCHEMA_VERSION}),
    "wrong_shape": (_wrong_shape, r"expected \d+ items|not a whole number", {ErrorCategory.INVALID}),
    "nan_reward": (_nan_reward, "NaN or infinity", {ErrorCategory.INVALID}),
    "absurd_length": (_absurd_length, "lengths must lie in", {ErrorCategory.INVALID}),
    "wrong_kind": (_wrong_kind, "message kind|expected rollout_batch, got", {ErrorCategory.WRONG_KIND}),
    "missing_field": (_missing_field, r"\.\w+: missing", {ErrorCategory.INVALID}),
}


def malformed(n: int, good: RolloutBatch, seed: int = 0) -> list[tuple[str, bytes]]:
    """`n` (kind, payload) pairs cycling through every kind of damage."""
    rng = random.Random(seed)
    names = sorted(KINDS)
    return [(names[i % len(names)], KINDS[names[i % len(names)]][0](rng, good)) for i in range(n)]
