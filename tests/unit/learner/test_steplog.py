"""metrics.jsonl: truncation on resume, and the Prometheus export of each step line."""

import json

from shared.metrics import learner_metrics
from services.learner.steplog import StepLog, read_steps


def test_steplog_truncates_redone_steps(tmp_path):
    log = StepLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3, 4):
        log.write({"step": step, "batch_ids": [f"b{step}"]})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "batch')  # a line cut by SIGKILL
    assert log.truncate_after(2) == 3
    assert [r["step"] for r in read_steps(tmp_path / "metrics.jsonl")] == [1, 2]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["batch_ids"] == ["b2"]


def test_step_line_exported_to_prometheus(tmp_path):
    metrics, reg = learner_metrics()
    log = StepLog(tmp_path / "metrics.jsonl", metrics)
    rec = {"step": 3, "policy_version": 3, "loss": -0.25, "grad_norm": 1.5, "lr": 1e-4, "tokens": 200,
           "samples": 16, "staleness": [0, 2], "adv_abs_mean": 0.8, "tokens_per_s": 1000.0,
           "kept_fraction": 0.5, "seconds": {"wait": 0.5, "forward_backward": 2.0, "optimizer": 0.25, "publish": 0.1},
           "is_truncated_fraction": 0.125, "mismatch_kl_k3": 0.002, "mismatch_ratio_p99": 1.5,
           "mismatch_logp_abs_diff_max": 0.75}
    log.write(rec)
    log.write({**rec, "step": 4, "kept_fraction": None})
    value = reg.get_sample_value
    assert value("dashrl_learner_steps_total") == 2 and value("dashrl_learner_tokens_total") == 400
    assert value("dashrl_learner_loss") == -0.25 and value("dashrl_policy_version") == 3
    assert value("dashrl_learner_kept_fraction") == 0.5  # a step without the number keeps the last one
    assert value("dashrl_learner_step_seconds_total", {"phase": "forward_backward"}) == 4.0
    assert value("dashrl_learner_step_seconds_total", {"phase": "wait"}) == 1.0
    assert value("dashrl_rollout_staleness_versions_bucket", {"le": "1.0"}) == 2  # the two zeros
    assert value("dashrl_rollout_staleness_versions_count") == 4
    assert value("dashrl_learner_publish_seconds_count") == 2
    assert value("dashrl_learner_advantage_abs_mean") == 0.8
    assert value("dashrl_learner_mismatch_kl_k3") == 0.002 and value("dashrl_learner_mismatch_ratio_p99") == 1.5
    assert value("dashrl_learner_mismatch_logp_abs_diff_max") == 0.75
    assert value("dashrl_learner_is_truncated_fraction") == 0.125
    assert len(read_steps(tmp_path / "metrics.jsonl")) == 2
