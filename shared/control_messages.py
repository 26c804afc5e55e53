"""The control-plane messages of the wire protocol: run assignment, stop, and heartbeats that
carry each service's typed report.

Encoded and decoded by `shared.protocol` (which re-exports every name here), so they share its
envelope (`kind`, `schema_version`, `run_id`) and its guarantee: `decode()` validates every
field and raises `ProtocolError` on anything else.

A heartbeat's `report` is a `SamplerReport` or a `LearnerReport`, chosen by the heartbeat's
`service`; every field of a report is on the wire (a number not known yet travels as nil), so
the control plane reads `report.samples`, never a guessed key of a map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from shared.wire_fields import Fields, ProtocolError


@dataclass
class RunAssignment:
    """Control: a worker should join run `run_id` with this (already validated) config."""

    KIND: ClassVar[str] = "run_assignment"
    run_id: str
    config: dict[str, Any]
    role: str = "any"
    """sampler, learner, or any."""

    def to_wire(self) -> dict[str, Any]:
        return {"config": self.config, "role": self.role}

    @classmethod
    def from_wire(cls, run_id: str, d: Fields) -> "RunAssignment":
        return cls(run_id=run_id, config=d.map("config"), role=d.str("role"))


@dataclass
class StopRun:
    """Control: stop gracefully (samplers stop, learner finishes its step, checkpoints, exits)."""

    KIND: ClassVar[str] = "stop_run"
    run_id: str
    reason: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def from_wire(cls, run_id: str, d: Fields) -> "StopRun":
        return cls(run_id=run_id, reason=d.str("reason"))


# How each annotation of a report field is read off the wire (counts and versions are >= 0).
_READERS = {
    "int": lambda d, name: d.int(name, minimum=0),
    "int | None": lambda d, name: d.optional_int(name, minimum=0),
    "float": lambda d, name: d.float(name),
    "float | None": lambda d, name: d.optional_float(name),
    "dict[str, float]": lambda d, name: d.float_map(name),
}


def _wire_value(annotation: str, value: Any) -> Any:
    """A non-finite number (a diverged loss) is sent as "not known": the decoder refuses NaN
    and infinity, and one such number must not make the whole heartbeat unreadable."""
    if value is None:
        return None
    if annotation.startswith("dict"):
        return {str(k): float(v) for k, v in value.items() if math.isfinite(v)}
    if annotation.startswith("int"):
        return int(value)
    return float(value) if math.isfinite(value) or annotation == "float" else None


class _Report:
    """Field-by-field encoding of a report dataclass, driven by its annotations."""

    SERVICE: ClassVar[str]
    FLAT_NAMES: ClassVar[dict[str, str]] = {}
    """How `numbers()` names the entries of each map field."""

    def to_wire(self) -> dict[str, Any]:
        return {f.name: _wire_value(f.type, getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_wire(cls, d: Fields) -> Any:
        return cls(**{f.name: _READERS[f.type](d, f.name) for f in fields(cls)})

    def numbers(self) -> dict[str, float]:
        """The report as a flat map of numbers (what the tracker logs and the status API's
        `services[].info` shows); values not known yet are left out."""
        out: dict[str, float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                out.update({self.FLAT_NAMES[f.name].format(k): v for k, v in value.items()})
            elif value is not None:
                out[f.name] = float(value)
        return out


@dataclass
class SamplerReport(_Report):
    """What a sampler shard reports in its heartbeat."""

    SERVICE: ClassVar[str] = "sampler"
    FLAT_NAMES: ClassVar[dict[str, str]] = {"evals": "eval_accuracy:{}", "stalled": "stalled_{}_s"}
    policy_version: int = 0
    """The version it samples with now."""
    calls: int = 0
    """Generation calls made."""
    samples: int = 0
    """Completions generated (before filtering)."""
    samples_kept: int = 0
    """Completions pushed (after filtering)."""
    batches: int = 0
    """Rollout batches pushed."""
    tokens_per_s: float | None = None
    """Generated tokens per second of the latest call."""
    reward_mean: float | None = None
    kept_fraction: float | None = None
    completion_len_mean: float | None = None
    truncated_fraction: float | None = None
    """These four: of the latest scored batch, before filtering."""
    weight_sync_s: float | None = None
    """Seconds from a version's announcement to serving it, of the latest swap."""
    eval_accuracy: float | None = None
    """The headline (first) eval's accuracy: greedy, else sampled pass@1 (shard 0 only)."""
    eval_accuracy_sampled: float | None = None
    eval_version: int | None = None
    """The policy version the latest eval scored."""
    evals: dict[str, float] = field(default_factory=dict)
    """Each named eval's latest accuracy, in config order."""
    stalled: dict[str, float] = field(default_factory=dict)
    """On the `failed` heartbeat after a watchdog timeout: the call that overran -> its seconds."""


@dataclass
class LearnerReport(_Report):
    """What the learner (rank 0) reports in its heartbeat."""

    SERVICE: ClassVar[str] = "learner"
    policy_version: int = 0
    step: int = 0
    samples: int = 0
    """Samples trained on since this process started."""
    loss: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    """Tokens through forward+backward per second of training, of the latest step."""
    adv_abs_mean: float | None = None
    staleness: float | None = None
    """Mean versions between the latest step's policy and its rollouts."""
    kept_fraction: float | None = None
    reward_mean: float | None = None
    """These two: the mean over the latest step's rollout batches."""


Report = SamplerReport | LearnerReport
REPORTS: dict[str, type] = {cls.SERVICE: cls for cls in (SamplerReport, LearnerReport)}


@dataclass
class Heartbeat:
    """Control: a service instance is alive, in `state`, and its latest numbers are `report`."""

    KIND: ClassVar[str] = "heartbeat"
    run_id: str
    instance_id: str
    state: str
    sent_at: float
    report: Report

    @property
    def service(self) -> str:
        return self.report.SERVICE

    def to_wire(self) -> dict[str, Any]:
        return {"service": self.service, "instance_id": self.instance_id, "state": self.state,
                "sent_at": float(self.sent_at), "report": self.report.to_wire()}

    @classmethod
    def from_wire(cls, run_id: str, d: Fields) -> "Heartbeat":
        service = d.str("service")
        report_cls = REPORTS.get(service)
        if report_cls is None:
            raise ProtocolError(f"heartbeat.service: unknown service {service!r} (known: {sorted(REPORTS)})")
        body = Fields(d.map("report"), f"heartbeat.report({service})")
        report = report_cls.from_wire(body)
        body.reject_unknown()
        return cls(run_id=run_id, instance_id=d.str("instance_id"), state=d.str("state"),
                   sent_at=d.float("sent_at"), report=report)
