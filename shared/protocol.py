"""The wire protocol: every message that crosses Redis, typed, versioned and validated.

Owns the envelope (`encode`, `decode`, `KINDS`, `SCHEMA_VERSION`) and the data-plane messages
(rollouts, weight announcements); the control-plane ones (run assignment, stop, heartbeats with
their typed reports) live in `shared.control_messages` and are re-exported here. Every message is a msgpack map carrying
`kind`, `schema_version` and `run_id`. Token ids and log-probs travel as packed little-endian
arrays (one contiguous buffer per batch plus per-sample lengths), never as lists of Python
numbers, so a 256 x 512-token batch encodes in about a millisecond.

`decode()` checks kind, schema version, field types, dtypes, shapes, value ranges and size
limits, and raises `ProtocolError` (and only that) on anything else, its `category`
(`ErrorCategory`) saying which way the bytes were wrong. No pickle anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Iterator

import msgpack
import numpy as np

from shared.control_messages import Heartbeat, LearnerReport, Report, RunAssignment, SamplerReport, StopRun
from shared.wire_fields import ErrorCategory, ProtocolError
from shared.wire_fields import Fields as _Fields
from shared.wire_fields import pack_array as _pack

__all__ = ["ProtocolError", "ErrorCategory", "FinishReason", "Sample", "RolloutBatch", "WeightsPublished",
           "WeightsPushed", "RunAssignment", "StopRun", "Heartbeat", "SamplerReport", "LearnerReport", "Report", "Message",
           "KINDS", "encode", "decode", "SCHEMA_VERSION"]

SCHEMA_VERSION = 4
"""2: FinishReason.TURN_END. 3: a heartbeat carries a typed SamplerReport or LearnerReport
(was a map of numbers under guessed names). 4: the `weights_pushed` kind (collective push)."""
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_SAMPLES = 1 << 16
MAX_SEQUENCE_TOKENS = 1 << 20
TOKEN_DTYPE = np.dtype("<i4")
FLOAT_DTYPE = np.dtype("<f4")


class FinishReason(IntEnum):
    STOP = 0
    """Ended on one of the model's end-of-sequence ids (shared.stop_tokens.StopTokens.eos)."""
    LENGTH = 1
    ABORT = 2
    TURN_END = 3
    """Ended on the chat template's end-of-turn id (`<|im_end|>`) when that is not an eos id."""


@dataclass
class Sample:
    """One completion of a prompt, with what the learner needs to train on it."""

    prompt_ids: np.ndarray  # (P,) int32
    completion_ids: np.ndarray  # (C,) int32
    logprobs: np.ndarray  # (C,) float32, sampler's log-prob of each sampled token
    reward: float
    advantage: float
    group_id: int
    finish_reason: FinishReason = FinishReason.STOP


@dataclass
class RolloutBatch:
    """Samples from one generation call of one policy version (after gradient filtering)."""

    KIND: ClassVar[str] = "rollout_batch"
    run_id: str
    batch_id: str
    sampler_id: str
    policy_version: int
    created_at: float
    prompt_ids: np.ndarray  # (sum P,) int32, prompts concatenated
    prompt_lens: np.ndarray  # (N,) int32
    completion_ids: np.ndarray  # (sum C,) int32
    completion_lens: np.ndarray  # (N,) int32
    logprobs: np.ndarray  # (sum C,) float32
    rewards: np.ndarray  # (N,) float32
    advantages: np.ndarray  # (N,) float32
    group_ids: np.ndarray  # (N,) int32
    finish_reasons: np.ndarray  # (N,) uint8
    stats: dict[str, float] = field(default_factory=dict)
    """Batch-level numbers before filtering: reward_mean, kept_fraction, lengths, timings."""

    @classmethod
    def from_samples(cls, samples: list[Sample], **meta: Any) -> "RolloutBatch":
        def cat(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
            if not arrays:
                return np.zeros(0, dtype=dtype)
            return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays])

        return cls(
            prompt_ids=cat([s.prompt_ids for s in samples], TOKEN_DTYPE),
            prompt_lens=np.array([len(s.prompt_ids) for s in samples], dtype=TOKEN_DTYPE),
            completion_ids=cat([s.completion_ids for s in samples], TOKEN_DTYPE),
            completion_lens=np.array([len(s.completion_ids) for s in samples], dtype=TOKEN_DTYPE),
            logprobs=cat([s.logprobs for s in samples], FLOAT_DTYPE),
            rewards=np.array([s.reward for s in samples], dtype=FLOAT_DTYPE),
            advantages=np.array([s.advantage for s in samples], dtype=FLOAT_DTYPE),
            group_ids=np.array([s.group_id for s in samples], dtype=TOKEN_DTYPE),
            finish_reasons=np.array([int(s.finish_reason) for s in samples], dtype=np.uint8),
            **meta,
        )

    def __len__(self) -> int:
        return int(self.prompt_lens.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.prompt_lens.sum() + self.completion_lens.sum())

    def samples(self) -> Iterator[Sample]:
        p_off = np.concatenate([[0], np.cumsum(self.prompt_lens)])
        c_off = np.concatenate([[0], np.cumsum(self.completion_lens)])
        for i in range(len(self)):
            c = slice(c_off[i], c_off[i + 1])
            yield Sample(
                prompt_ids=self.prompt_ids[p_off[i] : p_off[i + 1]],
                completion_ids=self.completion_ids[c],
                logprobs=self.logprobs[c],
                reward=float(self.rewards[i]),
                advantage=float(self.advantages[i]),
                group_id=int(self.group_ids[i]),
                finish_reason=FinishReason(int(self.finish_reasons[i])),
            )

    def to_wire(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "sampler_id": self.sampler_id,
            "policy_version": int(self.policy_version),
            "created_at": float(self.created_at),
            "prompt_ids": _pack(self.prompt_ids, TOKEN_DTYPE),
            "prompt_lens": _pack(self.prompt_lens, TOKEN_DTYPE),
            "completion_ids": _pack(self.completion_ids, TOKEN_DTYPE),
            "completion_lens": _pack(self.completion_lens, TOKEN_DTYPE),
            "logprobs": _pack(self.logprobs, FLOAT_DTYPE),
            "rewards": _pack(self.rewards, FLOAT_DTYPE),
            "advantages": _pack(self.advantages, FLOAT_DTYPE),
            "group_ids": _pack(self.group_ids, TOKEN_DTYPE),
            "finish_reasons": _pack(self.finish_reasons, np.dtype("u1")),
            "stats": {str(k): float(v) for k, v in self.stats.items()},
        }

    @classmethod
    def from_wire(cls, run_id: str, d: "_Fields") -> "RolloutBatch":
        prompt_lens = d.array("prompt_lens", TOKEN_DTYPE)
        n = prompt_lens.shape[0]
        if n > MAX_SAMPLES:
            raise ProtocolError(f"rollout_batch: {n} samples exceeds limit {MAX_SAMPLES}")
        completion_lens = d.array("completion_lens", TOKEN_DTYPE, n)
        for name, lens in (("prompt_lens", prompt_lens), ("completion_lens", completion_lens)):
            if n and (lens.min() < 0 or lens.max() > MAX_SEQUENCE_TOKENS):
                raise ProtocolError(f"rollout_batch.{name}: lengths must lie in [0, {MAX_SEQUENCE_TOKENS}]")
        n_prompt, n_completion = int(prompt_lens.sum()), int(completion_lens.sum())
        batch = cls(
            run_id=run_id,
            batch_id=d.str("batch_id"),
            sampler_id=d.str("sampler_id"),
            policy_version=d.int("policy_version", minimum=0),
            created_at=d.float("created_at"),
            prompt_ids=d.array("prompt_ids", TOKEN_DTYPE, n_prompt),
            prompt_lens=prompt_lens,
            completion_ids=d.array("completion_ids", TOKEN_DTYPE, n_completion),
            completion_lens=completion_lens,
            logprobs=d.array("logprobs", FLOAT_DTYPE, n_completion),
            rewards=d.array("rewards", FLOAT_DTYPE, n),
            advantages=d.array("advantages", FLOAT_DTYPE, n),
            group_ids=d.array("group_ids", TOKEN_DTYPE, n),
            finish_reasons=d.array("finish_reasons", np.dtype("u1"), n),
            stats=d.float_map("stats"),
        )
        _check_rollout_values(batch)
        return batch


def _check_rollout_values(b: RolloutBatch) -> None:
    for name in ("rewards", "advantages", "logprobs"):
        if not np.isfinite(getattr(b, name)).all():
            raise ProtocolError(f"rollout_batch.{name}: contains NaN or infinity")
    if b.logprobs.size and b.logprobs.max() > 1e-3:
        raise ProtocolError("rollout_batch.logprobs: log-probabilities must be <= 0")
    for name in ("prompt_ids", "completion_ids"):
        ids = getattr(b, name)
        if ids.size and ids.min() < 0:
            raise ProtocolError(f"rollout_batch.{name}: negative token id")
    if b.finish_reasons.size and b.finish_reasons.max() > max(FinishReason):
        raise ProtocolError("rollout_batch.finish_reasons: unknown finish reason")


@dataclass
class WeightsPublished:
    """A complete weight version is in the store and may be loaded."""

    KIND: ClassVar[str] = "weights_published"
    run_id: str
    version: int
    location: str
    """A folder path (format safetensors-dir) or a Redis key prefix (format redis-chunks)."""
    format: str
    checksum: str
    """sha256 over the version's manifest (file names, sizes and per-file sha256)."""
    byte_size: int
    step: int
    published_at: float
    FORMATS: ClassVar[tuple[str, ...]] = ("safetensors-dir", "redis-chunks")

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": int(self.version),
            "location": self.location,
            "format": self.format,
            "checksum": self.checksum,
            "byte_size": int(self.byte_size),
            "step": int(self.step),
            "published_at": float(self.published_at),
        }

    @classmethod
    def from_wire(cls, run_id: str, d: "_Fields") -> "WeightsPublished":
        fmt = d.str("format")
        if fmt not in cls.FORMATS:
            raise ProtocolError(f"weights_published.format: unknown format {fmt!r}")
        return cls(
            run_id=run_id,
            version=d.int("version", minimum=0),
            location=d.str("location"),
            format=fmt,
            checksum=d.str("checksum"),
            byte_size=d.int("byte_size", minimum=0),
            step=d.int("step", minimum=0),
            published_at=d.float("published_at"),
        )


@dataclass
class WeightsPushed:
    """A weight version is about to be broadcast over push-group `generation` (shared.weight_push):
    every sampler holding a seat in that generation receives it and checks `checksum`
    (shared.weight_push.checksum over the received tensors); any other sampler, or one whose
    receive fails, waits for the same version's WeightsPublished from the store."""

    KIND: ClassVar[str] = "weights_pushed"
    run_id: str
    version: int
    generation: int
    checksum: str
    byte_size: int
    step: int
    published_at: float

    def to_wire(self) -> dict[str, Any]:
        return {"version": int(self.version), "generation": int(self.generation), "checksum": self.checksum,
                "byte_size": int(self.byte_size), "step": int(self.step), "published_at": float(self.published_at)}

    @classmethod
    def from_wire(cls, run_id: str, d: "_Fields") -> "WeightsPushed":
        return cls(run_id=run_id, version=d.int("version", minimum=0), generation=d.int("generation", minimum=0),
                   checksum=d.str("checksum"), byte_size=d.int("byte_size", minimum=0),
                   step=d.int("step", minimum=0), published_at=d.float("published_at"))


Message = RolloutBatch | WeightsPublished | WeightsPushed | RunAssignment | StopRun | Heartbeat
KINDS: dict[str, type] = {cls.KIND: cls for cls in (RolloutBatch, WeightsPublished, WeightsPushed, RunAssignment,
                                                    StopRun, Heartbeat)}


def encode(msg: Message) -> bytes:
    body = msg.to_wire()
    body.update(kind=msg.KIND, schema_version=SCHEMA_VERSION, run_id=msg.run_id)
    return msgpack.packb(body, use_bin_type=True)


def decode(data: bytes, expect: type | None = None) -> Message:
    """Decode and validate one message; `expect` restricts the kind. Raises ProtocolError only."""
    undecodable = ErrorCategory.UNDECODABLE
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"message must be bytes, got {type(data).__name__}", undecodable)
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds limit {MAX_MESSAGE_BYTES}")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, use_list=True)
    except Exception as err:  # msgpack raises many types on garbage; all mean "not a message"
        raise ProtocolError(f"not msgpack: {type(err).__name__}: {err}", undecodable) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"message must be a map, got {type(obj).__name__}", undecodable)
    fields = _Fields(obj, "message")
    kind = fields.str("kind")
    cls = KINDS.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}", ErrorCategory.WRONG_KIND)
    if expect is not None and cls is not expect:
        raise ProtocolError(f"expected {expect.KIND}, got {kind}", ErrorCategory.WRONG_KIND)
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != SCHEMA_VERSION:
        raise ProtocolError(f"{kind}: schema_version {version!r} not supported (this build speaks {SCHEMA_VERSION})",
                            ErrorCategory.SCHEMA_VERSION)
    run_id = fields.str("run_id")
    body = _Fields({k: v for k, v in obj.items() if k not in ("kind", "schema_version", "run_id")}, kind)
    try:
        msg = cls.from_wire(run_id, body)
    except (ValueError, TypeError, OverflowError) as err:
        if isinstance(err, ProtocolError):
            raise
        raise ProtocolError(f"{kind}: {err}") from None
    body.reject_unknown()
    return msg
