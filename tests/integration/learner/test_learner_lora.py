"""The learner service with `model.lora` on a real Redis stream and the tiny model: a LoRA run
learns the scripted task (tests/helpers/scripted_rollouts.py, as test_learner_training), every
published version and checkpoint is the adapter alone, and `final/` loads with plain
transformers (merged) and as base + adapter with peft, both giving the same policy; `dashrl
export` of the run (final/ and an adapter version, merged into the base) loads the same way."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from services.cli import main as cli
from services.learner.steplog import read_steps
from shared.runstate import RunState
from shared.weights import MANIFEST
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.scripted_rollouts import BAD, GOOD, ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def test_lora_learner_learns_and_publishes_adapters(redis_proc, redis_client, tmp_path):
    pytest.importorskip("peft")
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run, steps = "lora", 12
    texts = prompts(4 * steps)
    write_batches(redis_client, run, [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(steps)])
    lora = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]}
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs", lora=lora,
                       learner={"max_steps": steps, "checkpoint_every": 5, "lr": 1e-2, "keep_versions": 3},
                       algo={"loss_aggregation": "dash"})
    log = tmp_path / "learner.log"
    proc = start_learner(cfg, redis_proc.url, log)
    try:
        proc.wait(240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "LoRA r=8" in log.read_text()

    run_dir = tmp_path / "runs" / run
    recs = read_steps(run_dir / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    last = sum(r["loss"] for r in recs[-3:]) / 3
    assert last < recs[0]["loss"] - 0.05, [round(r["loss"], 4) for r in recs]

    start = AutoModelForCausalLM.from_pretrained(model_dir)
    final = AutoModelForCausalLM.from_pretrained(run_dir / "final")  # merged: a plain HF folder
    probe = prompts(60)[-8:]  # prompts the learner never saw
    good0, good1 = pol.mean_logprob(start, probe, GOOD), pol.mean_logprob(final, probe, GOOD)
    bad0, bad1 = pol.mean_logprob(start, probe, BAD), pol.mean_logprob(final, probe, BAD)
    print(f"LoRA, mean log-prob on unseen prompts: rewarded {good0:.3f} -> {good1:.3f}, unrewarded {bad0:.3f} -> {bad1:.3f}")
    assert good1 > good0 + 0.2, (good0, good1)
    assert bad1 < bad0 - 0.2, (bad0, bad1)

    from peft import PeftModel

    peft_merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir),
                                            run_dir / "final" / "adapter").merge_and_unload()
    ids = torch.tensor([pol.encode(probe[0]).tolist()])
    with torch.no_grad():
        assert torch.allclose(final(input_ids=ids).logits, peft_merged(input_ids=ids).logits, atol=1e-5)

    out = tmp_path / "export-final"
    assert cli(["export", str(run_dir), "--out", str(out)]) == 0
    with torch.no_grad():
        assert torch.equal(AutoModelForCausalLM.from_pretrained(out)(input_ids=ids).logits,
                           final(input_ids=ids).logits)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    v = steps - 1  # an adapter version from the weight store, merged by export
    assert cli(["export", str(run_dir), "--version", str(v), "--out", str(tmp_path / "export-v")]) == 0
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "export-v")
    by_peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir),
                                        run_dir / "weights" / f"v{v}").merge_and_unload()
    with torch.no_grad():
        got, want = exported(input_ids=ids).logits, by_peft(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, final(input_ids=ids).logits, atol=1e-4)

    versions = sorted((run_dir / "weights").glob("v*"))
    assert versions and all(json.loads((v / MANIFEST).read_text())["adapter"] for v in versions)
    assert all(not (v / "model.safetensors").exists() for v in versions)
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"))[-1] / "model"
    assert (ckpt / "adapter_model.safetensors").exists() and not (ckpt / "model.safetensors").exists()
    assert RunState(redis_client, run).learner_done()
