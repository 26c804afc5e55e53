"""`dashrl run` end to end on the tiny random Qwen2 (tied embeddings, q/k/v bias, a chat template
whose turn end `<|im_end|>` is not the eos) with the vLLM sampler: every published version is
reloaded in place (the tied output layer re-packed, no engine rebuilt), the samples carry the
newer versions, and the run finishes its steps with an eval."""

from __future__ import annotations

import json

import pytest

from tests.helpers.control_server import tiny_run_config
from tests.helpers.tiny_qwen2 import build_tiny_qwen2
from tests.integration.control.test_control_local_run import start_run

pytestmark = pytest.mark.slow
pytest.importorskip("vllm")

STEPS = 6


def test_dashrl_run_on_a_tied_qwen2_with_vllm(tmp_path):
    model = build_tiny_qwen2(tmp_path / "model")
    cfg = tiny_run_config(tmp_path / "runs", model, max_steps=STEPS,
                          sampler={"backend": "vllm", "max_new_tokens": 16, "eval_every": 3,
                                   "max_prompt_tokens": 256})  # char-level: a chat prompt is ~150 ids
    cfg["run_id"] = "qwen2-run"
    proc, stderr = start_run(tmp_path, cfg)
    try:
        out, _ = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = stderr.read_text()
    assert proc.returncode == 0, out + err[-3000:]
    folder = tmp_path / "runs" / "qwen2-run"
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == STEPS
    sampler_log = "".join(p.read_text() for p in (folder / "logs").glob("sampler*.log"))
    assert "reloaded weights" in sampler_log and "starting engine" in sampler_log
    assert sampler_log.count("starting engine") == 1, "an engine was rebuilt for a new version"
    calls = [json.loads(line) for line in (folder / "sampler-0.jsonl").read_text().splitlines()]
    assert max(c["policy_version"] for c in calls) >= 1  # samples from a reloaded version
    assert all(0 < c["completion_len_mean"] <= 16 for c in calls)  # generated, before filtering
    evals = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines()]
    assert evals and evals[0]["version"] == 0
