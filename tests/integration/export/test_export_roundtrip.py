"""`dashrl export` round trip on a real learner run (the `dashrl learner` service on scripted
rollouts, private Redis, tiny model): the exported folder loads with plain transformers and
gives the same float32 logits as the run's final weights; the chosen dtype is what is written;
the model card records the run, its steps and its eval results; an earlier version exports from
the weight store."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from services.cli import main as cli
from services.sampler.evaluation import EvalResult
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.fixture(scope="module")
def run_dir(redis_proc, tmp_path_factory):
    import redis

    tmp = tmp_path_factory.mktemp("export")
    model_dir = build_tiny_model(tmp / "tiny")
    pol, texts = ScriptedPolicy(model_dir), prompts(4 * STEPS)
    batches = [pol.batch("exp", texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(STEPS)]
    write_batches(redis.Redis.from_url(redis_proc.url), "exp", batches)
    cfg = write_config(tmp / "cfg.yaml", run_id="exp", model=model_dir, output_dir=tmp / "runs",
                       learner={"max_steps": STEPS, "keep_versions": 10})
    proc = start_learner(cfg, redis_proc.url, tmp / "learner.log")
    try:
        assert proc.wait(300) == 0, (tmp / "learner.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    run = tmp / "runs" / "exp"
    with open(run / "eval.jsonl", "a") as f:  # what the sampler writes at versions 0 and 3
        for v, acc in ((0, 0.25), (STEPS, 0.5)):
            f.write(json.dumps(EvalResult("held_out", v, 4, 0.1, greedy_accuracy=acc, samples=1,
                                          pass_at_k={1: acc / 2}).row()) + "\n")
    return run


def logits(folder, ids):
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits


def test_export_loads_in_plain_transformers_with_equal_logits(run_dir, tmp_path):
    out = tmp_path / "hf"
    assert cli(["export", str(run_dir), "--out", str(out)]) == 0
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = torch.tensor([tok("q1: 3+4=")["input_ids"]])
    assert torch.equal(logits(out, ids), logits(run_dir / "final", ids))
    assert not torch.equal(logits(out, ids), logits(run_dir.parent.parent / "tiny", ids))  # trained weights
    assert GenerationConfig.from_pretrained(str(out)).eos_token_id == tok.eos_token_id
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "| run | `exp` |" in card
    assert f"| optimizer steps | {STEPS} |" in card and "run_id: exp" in card  # config block
    assert "| held_out | 0 | 4 | 0.2500 | 0.1250 |" in card and f"| held_out | {STEPS} | 4 | 0.5000 | 0.2500 |" in card


def test_export_version_and_dtype(run_dir, tmp_path):
    out = tmp_path / "v1"
    assert cli(["export", str(run_dir), "--version", "1", "--dtype", "bfloat16", "--out", str(out)]) == 0
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype="auto")
    assert next(model.parameters()).dtype == torch.bfloat16
    ref = AutoModelForCausalLM.from_pretrained(str(run_dir / "weights" / "v1"), dtype=torch.float32).state_dict()
    got = model.state_dict()
    assert all(torch.equal(got[k], ref[k].to(torch.bfloat16)) for k in ref)
    card = (out / "README.md").read_text()
    assert "| policy version | 1 |" in card and "| optimizer steps | 1 |" in card and "weights/v1" in card
    assert f"| held_out | {STEPS} |" not in card  # evals after the exported version are left out


def test_export_errors_are_one_line(run_dir, tmp_path, capsys):
    assert cli(["export", str(run_dir), "--version", "99", "--out", str(tmp_path / "x")]) == 2
    assert "version 99 is neither in weights/" in capsys.readouterr().err
    assert cli(["export", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "not a run folder (no config.yaml)" in capsys.readouterr().err
