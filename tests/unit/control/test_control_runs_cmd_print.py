"""services/control/runs_cmd.py: `dashrl status` prints a run view read into `RunView` (every
section: numbers, evals, failure, folder, services)."""

from __future__ import annotations

from services.control.runs_cmd import _print_status
from services.control.status import summarize
from shared.protocol import Heartbeat, LearnerReport, SamplerReport


def test_status_prints_every_section_from_the_view(capsys):
    beats = [Heartbeat("r1", "l0", "training", 95.0, LearnerReport(step=4, policy_version=4, samples=128,
                                                                     tokens_per_s=2500.0, staleness=0.5)),
             Heartbeat("r1", "s0", "running", 60.0, SamplerReport(policy_version=3, tokens_per_s=700.0,
                                                                  reward_mean=0.25, kept_fraction=0.5,
                                                                  evals={"gsm8k": 0.375}))]
    fields = {"failed_service": "sampler", "exit_code": "3", "log_tail": "generate call running for 2000s",
              "run_dir": "/runs/r1", "stop_reason": "test"}
    view = summarize("r1", "failed", fields, beats, queue_depth=2, now=100.0)
    _print_status(view)
    out = capsys.readouterr().out
    assert out.startswith("run r1: failed (test)\n")
    assert "step 4/?, policy version 4, samples 128" in out
    assert "reward 0.250, kept 0.500, staleness 0.50, queue 2" in out and "tok/s sampler 700, learner 2500" in out
    assert "eval gsm8k: 0.375" in out and "failed: sampler (exit 3)\ngenerate call running for 2000s" in out
    assert "folder /runs/r1" in out
    rows = {line.split()[1]: line.split()[2:] for line in out.splitlines() if line.startswith(("learner", "sampler"))}
    assert rows == {"l0": ["training", "5.0"], "s0": ["running", "(stale)", "40.0"]}
