"""A short `dashrl run` of SmolLM2-135M-Instruct end to end, as the documented run but tiny:
configs/smollm2-arith-cpu.yaml (chat template, reasoning-gym task, vLLM sampler, embedded
Redis) for 2 learner steps on small batches with short completions. Gradient filtering is off
so that a step happens whatever the weak model scores. Checks: both steps recorded, the
version-0 eval written, the sampler served a published version (a tied model's swap), and the
final model folder saved.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.control_server import ROOT
from tests.helpers.smollm2 import smollm2_folder
from tests.integration.test_demo_short import dashrl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
pytest.importorskip("vllm")

STEPS = 2


def test_short_smollm2_run(tmp_path):
    folder = smollm2_folder()
    config = str(ROOT / "configs" / "smollm2-arith-cpu.yaml")
    sets = [f"model.path={folder}", f"output_dir={tmp_path / 'runs'}", "run_id=smollm2-short",
            f"learner.max_steps={STEPS}", "learner.train_batch_size=8", "learner.micro_batch_size=8",
            "learner.checkpoint_every=2", "algo.filter_threshold=null", "sampler.sampling_batch_prompts=4",
            "sampler.group_size=2", "sampler.max_new_tokens=12", "sampler.eval_every=1", "task.eval_size=4"]
    run = dashrl(["run", config, *(a for s in sets for a in ("--set", s))], tmp_path, 1400)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    out = tmp_path / "runs" / "smollm2-short"
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["samples"] >= 8 for s in steps)
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert evals[0]["version"] == 0
    sampler_log = (out / "logs" / "sampler-0.log").read_text()
    assert "now serving policy version 1" in sampler_log
    assert (out / "final" / "model.safetensors").exists() and (out / "final" / "chat_template.jinja").exists()
