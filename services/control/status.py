"""A run's lifecycle state and its headline numbers, derived from what is in Redis (pure).

Owns the state machine and the API view of a run. Nothing here touches Redis: `runs_store`
reads the run's state hash and heartbeats and hands them to `derive_state` and `summarize`.

State machine (monotonic; stopped, finished and failed are terminal):
    pending --first heartbeat--> running --stop requested--> stopping --learner done and every
        service's last heartbeat says it left--> stopped
    running --learner done (max_steps) --> stopping (samplers winding down) --all gone--> finished
    any non-terminal --a service exited non-zero (or quit early)--> failed
    pending --stop requested before any service started--> stopped
"""

from __future__ import annotations

import json
from statistics import fmean
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, Field

from shared.protocol import Heartbeat, LearnerReport, SamplerReport

R = TypeVar("R", SamplerReport, LearnerReport)

TERMINAL = ("stopped", "finished", "failed")
STALE_HEARTBEAT_S = 30.0


FINAL_SERVICE_STATES = ("finished", "stopped", "failed", "exited")
"""Heartbeat states a service sends last, on its way out."""


def services_done(heartbeats: list[Heartbeat], now: float) -> bool:
    """Every service that ever beat has said goodbye (or has been silent too long to be alive)."""
    return all(hb.state in FINAL_SERVICE_STATES or now - hb.sent_at > STALE_HEARTBEAT_S for hb in heartbeats)


def derive_state(current: str, fields: dict[str, str], heartbeats: list[Heartbeat], now: float) -> str:
    """The state a run is in now, from its previous state, its state-hash flags and heartbeats.

    stopped/finished need the learner done AND every service gone, so a stopped run has no
    sampler still winding down."""
    if current in TERMINAL:
        return current
    if fields.get("failed_service"):
        return "failed"
    stop = fields.get("stop_requested") == "1"
    if fields.get("learner_done") == "1":
        if fields.get("services_exited") == "1" or services_done(heartbeats, now):
            return "stopped" if stop else "finished"
        return "stopping"
    if stop:
        # Nothing ever ran: there is nothing to wait for.
        started = bool(heartbeats) or current in ("running", "stopping")
        return "stopping" if started else "stopped"
    if heartbeats or current == "running":
        return "running"
    return "pending"


class ServiceView(BaseModel):
    service: str
    instance_id: str
    state: str
    last_heartbeat: float
    """Unix time of its latest heartbeat."""
    age_s: float
    """Seconds since that heartbeat."""
    stale: bool
    """No heartbeat for more than 30 s."""
    info: dict[str, float]
    """Its heartbeat report's numbers by field name (`SamplerReport`, `LearnerReport`); each
    named eval as `eval_accuracy:<name>`."""


class FailureView(BaseModel):
    service: str
    exit_code: int | None
    log_tail: str


class TokensPerSecond(BaseModel):
    sampler: float | None = None
    learner: float | None = None


class RunView(BaseModel):
    """What `GET /v1/runs/{id}` answers."""

    id: str
    state: str
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    policy_version: int | None = None
    learner_step: int | None = None
    max_steps: int | None = None
    samples: int | None = None
    tokens_per_s: TokensPerSecond = Field(default_factory=TokensPerSecond)
    reward_mean: float | None = None
    eval_accuracy: float | None = None
    """The headline (first) eval's accuracy."""
    evals: dict[str, float] = Field(default_factory=dict)
    """Each named eval's latest accuracy (greedy, else sampled pass@1), in config order."""
    kept_fraction: float | None = None
    staleness: float | None = None
    """Versions between the learner and the rollouts: what the learner reports, else the lag of
    the oldest sampler's policy version behind the learner's."""
    queue_depth: int | None = None
    """Rollout entries produced but not yet committed by the learner."""
    stop_reason: str | None = None
    failure: FailureView | None = None
    services: list[ServiceView] = Field(default_factory=list)
    metrics_ports: dict[str, int] = Field(default_factory=dict)
    run_dir: str | None = None
    config: dict[str, Any] | None = None


def _num(fields: dict[str, str], key: str) -> float | None:
    try:
        return float(fields[key])
    except (KeyError, ValueError):
        return None


def _reports(heartbeats: list[Heartbeat], kind: type[R]) -> list[R]:
    return [hb.report for hb in heartbeats if isinstance(hb.report, kind)]


def _known(values: Iterable[float | None]) -> list[float]:
    """The values the services have a number for."""
    return [v for v in values if v is not None]


def _agg(values: list[float], how: str) -> float | None:
    if not values:
        return None
    return {"sum": sum, "max": max, "mean": fmean}[how](values)


def _as_int(x: float | None) -> int | None:
    return None if x is None else int(x)


def summarize(run_id: str, state: str, fields: dict[str, str], heartbeats: list[Heartbeat],
              queue_depth: int | None, now: float) -> RunView:
    """The API view of one run: flags from its state hash, numbers from its heartbeats."""
    learner, sampler = _reports(heartbeats, LearnerReport), _reports(heartbeats, SamplerReport)
    version = _agg([r.policy_version for r in learner] or [r.policy_version for r in sampler], "max")
    failure = None
    if fields.get("failed_service"):
        code = _num(fields, "exit_code")
        failure = FailureView(service=fields["failed_service"], exit_code=_as_int(code),
                              log_tail=fields.get("log_tail", ""))
    config = json.loads(fields["config"]) if fields.get("config") else {}
    return RunView(
        id=run_id,
        state=state,
        created_at=_num(fields, "created_at"),
        started_at=_num(fields, "started_at"),
        ended_at=_num(fields, "ended_at"),
        policy_version=_as_int(version),
        learner_step=_as_int(_agg([r.step for r in learner], "max")),
        max_steps=config.get("learner", {}).get("max_steps"),
        samples=_as_int(_agg([r.samples for r in learner], "max") or _agg([r.samples for r in sampler], "sum")),
        tokens_per_s=TokensPerSecond(sampler=_agg(_known(r.tokens_per_s for r in sampler), "sum"),
                                     learner=_agg(_known(r.tokens_per_s for r in learner), "sum")),
        reward_mean=_agg(_known(r.reward_mean for r in sampler) or _known(r.reward_mean for r in learner), "mean"),
        eval_accuracy=_agg(_known(r.eval_accuracy for r in sampler), "max"),
        evals=_evals(sampler),
        kept_fraction=_agg(_known(r.kept_fraction for r in sampler) or _known(r.kept_fraction for r in learner),
                           "mean"),
        staleness=_staleness(learner, sampler),
        queue_depth=queue_depth,
        stop_reason=fields.get("stop_reason") or None,
        failure=failure,
        services=[_service_view(hb, now) for hb in sorted(heartbeats, key=lambda h: (h.service, h.instance_id))],
        metrics_ports={k: int(v) for k, v in json.loads(fields.get("metrics_ports") or "{}").items()},
        run_dir=fields.get("run_dir"),
    )


def _evals(sampler: list[SamplerReport]) -> dict[str, float]:
    """Each named eval's accuracy (only shard 0 evaluates; the best if several report one)."""
    out: dict[str, float] = {}
    for report in sampler:
        for name, value in report.evals.items():
            out[name] = max(value, out.get(name, value))
    return out


def _staleness(learner: list[LearnerReport], sampler: list[SamplerReport]) -> float | None:
    """What the learner reports; else how many versions the oldest sampler lags the learner."""
    reported = _agg(_known(r.staleness for r in learner), "mean")
    if reported is not None:
        return reported
    newest = _agg([r.policy_version for r in learner], "max")
    oldest = min((r.policy_version for r in sampler), default=None)
    if newest is None or oldest is None:
        return None
    return max(0.0, newest - oldest)


def _service_view(hb: Heartbeat, now: float) -> ServiceView:
    age = max(0.0, now - hb.sent_at)
    return ServiceView(service=hb.service, instance_id=hb.instance_id, state=hb.state,
                       last_heartbeat=hb.sent_at, age_s=round(age, 3), stale=age > STALE_HEARTBEAT_S,
                       info=hb.report.numbers())


EVAL_PREFIX = "eval_accuracy:"
"""Series keys of the named evals: `eval_accuracy:<name>`."""
SERIES_FIELDS = ("policy_version", "learner_step", "reward_mean", "eval_accuracy", "kept_fraction",
                 "staleness", "queue_depth", "sampler_tokens_per_s", "learner_tokens_per_s")


def series_field(key: str) -> bool:
    """A key a chart sample may hold: a fixed field or one named eval's accuracy."""
    return key in SERIES_FIELDS or key.startswith(EVAL_PREFIX)


def series_point(view: RunView) -> dict[str, float]:
    """The numbers of one dashboard chart sample (absent values are left out)."""
    values: dict[str, float | int | None] = {
        "policy_version": view.policy_version, "learner_step": view.learner_step,
        "reward_mean": view.reward_mean, "eval_accuracy": view.eval_accuracy,
        "kept_fraction": view.kept_fraction, "staleness": view.staleness,
        "queue_depth": view.queue_depth, "sampler_tokens_per_s": view.tokens_per_s.sampler,
        "learner_tokens_per_s": view.tokens_per_s.learner,
        **{EVAL_PREFIX + name: acc for name, acc in view.evals.items()},
    }
    return {k: float(v) for k, v in values.items() if v is not None}
