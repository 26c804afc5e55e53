"""Per-step metrics: one JSON line per committed-lineage step in `metrics.jsonl`, and Prometheus.

Owns the record of what each step trained on. A line is written when its step finishes; on
`--resume` the lines of steps after the checkpoint (work that died with the old process and
will be redone) are dropped first, so the file always describes the resumed lineage: every
batch id in it was trained exactly once by the model that exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared.metrics import LearnerMetrics
from shared.tracking import Tracking, numeric

PHASES = ("wait", "forward_backward", "optimizer", "publish", "commit")


class StepLog:
    def __init__(self, path: Path, metrics: LearnerMetrics | None = None, tracking: Tracking | None = None) -> None:
        self.path, self.metrics, self.tracking = path, metrics, tracking
        path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> int:
        """Drop lines of steps > `step` (atomically); returns how many were dropped."""
        if not self.path.exists():
            return 0
        keep, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1  # a line cut by a kill mid-write
                continue
            if rec.get("step", 0) <= step:
                keep.append(line)
            else:
                dropped += 1
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)
        return dropped

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.metrics is not None:
            self._export(record)
        if self.tracking:  # the same numbers in the experiment trackers (never blocks, never raises)
            self.tracking.log(numeric(record, "learner/", skip=("step", "time")), record["step"], "learner/step")

    def _export(self, rec: dict[str, Any]) -> None:
        m = self.metrics
        m.steps.inc()
        m.tokens.inc(rec["tokens"])
        m.samples.inc(rec["samples"])
        m.policy_version.set(rec["policy_version"])
        m.loss.set(rec["loss"])
        m.grad_norm.set(rec["grad_norm"])
        m.lr.set(rec["lr"])
        for s in rec["staleness"]:
            m.staleness.observe(s)
        for phase in PHASES:
            m.step_seconds.labels(phase=phase).inc(rec["seconds"].get(phase, 0.0))
        if rec["seconds"].get("publish"):
            m.publish_seconds.observe(rec["seconds"]["publish"])
        m.adv_abs_mean.set(rec["adv_abs_mean"])
        m.tokens_per_s.set(rec["tokens_per_s"])
        if rec.get("kept_fraction") is not None:
            m.kept_fraction.set(rec["kept_fraction"])
        m.is_truncated_fraction.set(rec.get("is_truncated_fraction", 0.0))
        for name, gauge in m.mismatch.items():
            if f"mismatch_{name}" in rec:
                gauge.set(rec[f"mismatch_{name}"])


def read_steps(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (tests, reports)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
