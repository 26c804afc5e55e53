"""Experiment tracking: the run's numbers in TensorBoard, MLflow and/or W&B (`tracking:` in the config).

`Tracking.start(cfg, run_dir, service)` builds one background worker per configured tracker;
the services call `log(...)` (never blocks, never raises), `artifact(final_dir)` at the end and
`close()`. Importable without torch or any tracker library: each is imported on its worker
thread when it opens. What each service logs:
- learner: every step's metrics.jsonl numbers as `learner/<key>` on the axis `learner/step`,
  and the final model as an artifact (MLflow, W&B);
- sampler: generation and reward figures per generation call as `sampler/<key>` (`sampler/call`);
- evals: `eval/<name>/<figure>` on the axis `eval/policy_version`;
- every service: the resolved config as params / hyper-parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

from shared.tracking.worker import TrackerWorker
from shared.tracking_config import MlflowTracker, TensorBoardTracker, TrackerConfig, WandbTracker

__all__ = ["Tracking", "numeric"]


def numeric(record: Mapping[str, Any], prefix: str, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The finite numbers of a record, keys prefixed; nested dicts become `a/b` (e.g. seconds/wait)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in skip:
            continue
        if isinstance(value, Mapping):
            out.update(numeric(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def _backend(t: TrackerConfig, run_dir: Path, run_id: str, service: str, config: dict) -> Any:
    from shared.tracking import backends as b

    if isinstance(t, TensorBoardTracker):
        return b.TensorBoardBackend(t, run_dir, service, config)
    if isinstance(t, MlflowTracker):
        return b.MlflowBackend(t, run_id, service, config)
    if isinstance(t, WandbTracker):
        return b.WandbBackend(t, run_dir, run_id, service, config)
    raise TypeError(f"unknown tracker {t!r}")


class Tracking:
    def __init__(self, workers: list[TrackerWorker]) -> None:
        self.workers = workers

    @classmethod
    def start(cls, trackers: list[TrackerConfig], config: dict, run_dir: Path, run_id: str, service: str,
              count: Callable[[str, str], None] | None = None) -> "Tracking":
        """Start a worker per tracker. `config`: the resolved run config (a JSON-able dict);
        `count(tracker, reason)`: called per error or dropped record (the Prometheus counter)."""
        return cls([TrackerWorker(_backend(t, run_dir, run_id, service, config), t.queue_size, t.close_timeout_s,
                                  count) for t in trackers])

    @classmethod
    def for_run(cls, cfg: Any, run_dir: Path, service: str, errors: Any = None) -> "Tracking":
        """From a RunConfig; `errors`: a Counter labelled (tracker, reason), see shared.metrics."""
        count = (lambda kind, reason: errors.labels(tracker=kind, reason=reason).inc()) if errors is not None else None
        return cls.start(cfg.tracking, cfg.model_dump(mode="json"), run_dir, str(cfg.run_id), service, count)

    def __bool__(self) -> bool:
        return bool(self.workers)

    def log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        if metrics:
            for w in self.workers:
                w.submit("log", dict(metrics), int(step), axis)

    def artifact(self, path: Path) -> None:
        for w in self.workers:
            w.submit("artifact", Path(path))

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []
