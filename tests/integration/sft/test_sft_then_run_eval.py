"""`dashrl sft --config RUN.yaml`, then that run's version-0 eval: a tiny model (char tokenizer
that prefixes <s>, as Llama-style ones do, and no chat template) fine-tuned by the real CLI on a
JSONL task of the run scores exactly the same on the run's held-out rows under `dashrl sft`'s
evaluation (services/sft/evaluate.py) as under the sampler's own version-0 eval, problem by problem,
because both take the split, the system prompt and the prompt ids from shared/tasks. Before, the
sampler appended a newline and the BOS that SFT never saw, and the run's first eval read ~0%."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from services.sampler.parts import build_loop
from services.sampler.rewards import reward_spec, score_one
from services.sft.evaluate import accuracy, scores
from shared.configio import dump_config, load_config
from shared.metrics import sampler_metrics
from shared.tasks import SOLVED, PromptRenderer, load_task
from tests.conftest import ROOT
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow  # SFT of 150 steps and two evals: about a minute on an idle 2-core box


class OldSamplerRule(PromptRenderer):
    """The sampler's rendering before shared/tasks: a newline after the question."""

    def text(self, question: str) -> str:
        return super().text(question) + "\n"


def run_config(tmp_path, model_dir):
    rows = [{"prompt": f"{a}+{b}=", "answer": f"\\boxed{{{a + b}}}"} for a in range(10) for b in range(10)]
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(None, [
        "run_id=sft-v0", f"output_dir={tmp_path / 'runs'}", f"model.path={model_dir}", "model.dtype=float32",
        "sampler.backend=transformers", "sampler.max_new_tokens=12", "sampler.max_prompt_tokens=64",
        "sampler.eval_every=1", "task.source.kind=jsonl", f"task.source.path={data}", "task.eval_size=20",
        # A generous verifier timeout: on a loaded box math-verify's first calls can pass 5 s, and a
        # timed-out call scores 0 in the run's eval but not in the comparison.
        "task.system_prompt=Add.", "task.reward_workers=1", "task.reward_timeout_s=120",
    ])
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(cfg))
    return cfg, path


def test_sft_accuracy_is_the_runs_version_0_eval(redis_client, tmp_path):
    base = build_tiny_model(tmp_path / "base", add_bos=True)
    cfg, cfg_path = run_config(tmp_path, tmp_path / "sft")
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "sft", "--model", str(base), "--config", str(cfg_path),
         "--out", str(tmp_path / "sft"), "--max-steps", "150", "--lr", "3e-3", "--batch-size", "16", "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sft: 80 rows" in proc.stdout  # the run's training split: the 20 held-out rows never trained on

    metrics, _ = sampler_metrics()
    loop = build_loop(cfg, redis_client, cfg.run_id, metrics, tmp_path / "local")
    try:
        loop.maybe_eval()  # the run's first eval: version 0, the SFT folder as served
        run_eval = json.loads((tmp_path / "runs" / cfg.run_id / "eval.jsonl").read_text().splitlines()[0])
        evaluator = loop.evaluator.evaluators[0]  # the suite's one eval: held_out
        # (problems, n=1) scores: one greedy completion each
        run_scores = evaluator.score(loop.backend, replace(evaluator.settings, temperature=0.0))[:, 0].tolist()
    finally:
        loop.close()

    task = load_task(cfg.task, cfg.data_seed)
    assert [p.question for p in evaluator.problems] == [p.question for p in task.eval] and len(task.eval) == 20
    spec = reward_spec(cfg.task)
    verify = lambda completion, p: score_one(spec, completion, p.answer, p.entry, 120.0)[0]  # noqa: E731
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "sft")
    sft_model = AutoModelForCausalLM.from_pretrained(tmp_path / "sft").eval()
    sft_renderer = PromptRenderer(tok, task.system_prompt)
    assert sft_renderer.prompt_ids(task.eval[0].question)[0] == tok.bos_token_id
    sft_scores = scores(sft_model, sft_renderer, task.eval, verify, cfg.sampler.max_new_tokens)
    sft_acc = accuracy(sft_model, sft_renderer, task.eval, verify, cfg.sampler.max_new_tokens)

    assert run_eval["version"] == 0 and run_eval["num_problems"] == 20
    assert sft_scores == run_scores  # problem by problem
    assert sft_acc == run_eval["greedy_accuracy"] == sum(s >= SOLVED for s in run_scores) / 20
    assert sft_acc >= 0.3, f"SFT should have taught the task ({sft_acc})"
    old = accuracy(sft_model, OldSamplerRule(tok, task.system_prompt), task.eval, verify, cfg.sampler.max_new_tokens)
    assert old < sft_acc, (old, sft_acc)  # the test tells the two renderings apart


def test_sft_on_a_reasoning_gym_run_config_reports_held_out_accuracy(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    cfg = load_config(None, [
        f"model.path={tmp_path / 'sft'}", "task.source.kind=reasoning_gym", "task.source.name=basic_arithmetic",
        "task.source.size=40", "task.eval_size=6", "task.system_prompt=''", "sampler.max_new_tokens=4",
    ])
    (tmp_path / "run.yaml").write_text(dump_config(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "sft", "--model", str(base), "--config", str(tmp_path / "run.yaml"),
         "--out", str(tmp_path / "sft"), "--max-steps", "2", "--batch-size", "4"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = len(load_task(cfg.task, cfg.data_seed).train)
    assert f"sft: {train} rows" in proc.stdout
    assert "sft: held-out greedy accuracy 0.000 over 6 problems" in proc.stdout  # 2 steps: nothing learnt yet
    assert (tmp_path / "sft" / "config.json").exists()
