"""Evaluators of named evals on a scripted backend (pure logic: which completions come back is
fixed) and a real reward pool: greedy accuracy, pass@k over n samples, the eval.jsonl lines, the
`eval`-labelled metrics and the heartbeat's headline."""

import json

import numpy as np
import pytest

from services.sampler.backends import Completion, GenerationBackend, SamplingSettings
from services.sampler.eval_sets import EvalSet
from services.sampler.evaluation import build_suite, heartbeat_info
from services.sampler.rewards import RewardPool, RewardSpec
from services.sampler.tasks import Problem, PromptRenderer
from shared.eval_config import EvalConfig
from shared.metrics import sampler_metrics
from tests.helpers.tiny_model import build_tokenizer

pytestmark = pytest.mark.process  # every test uses the module's reward pool (worker processes)

EXACT = RewardSpec("function", "tests.helpers.sampler_rewards:exact")
# Per problem answer "a<i>": greedy solves problem 0 only; of 4 samples, problem 0 gets 2 right,
# problem 1 none, problem 2 all four.
SAMPLED_RIGHT = {0: 2, 1: 0, 2: 4}


class ScriptedBackend(GenerationBackend):
    name = "scripted"

    def __init__(self, tokenizer):
        self.tok, self.calls = tokenizer, []

    def generate(self, prompts, settings: SamplingSettings):
        self.calls.append((len(prompts), settings.n, settings.temperature))
        out = []
        for p in prompts:
            i = int(self.tok.decode(p, skip_special_tokens=True).strip()[-1])  # the prompt is "q<i>"
            right = (1 if i == 0 else 0) if settings.temperature == 0 else SAMPLED_RIGHT[i]
            texts = [f"a{i}" if j < right else "wrong" for j in range(settings.n)]
            out.append([Completion(np.array(self.tok(t, add_special_tokens=False)["input_ids"], dtype=np.int32),
                                   np.zeros(len(t), np.float32), "stop") for t in texts])
        return out

    def load_weights(self, path):
        raise NotImplementedError


@pytest.fixture(scope="module")
def pool():
    p = RewardPool(EXACT, timeout_s=5.0, workers=1)
    yield p
    p.close()


def test_two_named_evals_record_greedy_and_pass_at_k(tmp_path, pool):
    tok = build_tokenizer()
    problems = [Problem(i, f"q{i}", f"a{i}") for i in range(3)]
    sets = [EvalSet(EvalConfig(name="greedy_only", pass_at_k=[]), problems, EXACT, ""),
            EvalSet(EvalConfig(name="sampled", greedy=False, samples=4, pass_at_k=[1, 2, 4]), problems, EXACT, "")]
    metrics, reg = sampler_metrics()
    backend = ScriptedBackend(tok)
    suite = build_suite(sets, PromptRenderer(tok, ""), pool, SamplingSettings(n=4, temperature=0.9), 64, tmp_path,
                        metrics)
    first, second = suite.run(backend, version=3)
    assert backend.calls == [(3, 1, 0.0), (3, 4, 0.9)]  # one greedy call, one call of n=4 samples
    assert (first.name, first.greedy_accuracy, first.sampled_accuracy, first.pass_at_k) == (
        "greedy_only", 1 / 3, None, {})
    assert second.greedy_accuracy is None and second.sampled_accuracy == pytest.approx(0.5)  # (2/4 + 0 + 1) / 3
    assert second.pass_at_k == pytest.approx({1: 0.5, 2: (5 / 6 + 0 + 1) / 3, 4: 2 / 3})
    rows = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [(r["name"], r["version"], r["num_problems"]) for r in rows] == [("greedy_only", 3, 3), ("sampled", 3, 3)]
    assert "sampled_accuracy" not in rows[0] and "greedy_accuracy" not in rows[1]
    assert rows[1]["pass_at_k"] == pytest.approx({"1": 0.5, "2": 11 / 18, "4": 2 / 3}) and rows[1]["samples"] == 4
    value = lambda name, **labels: reg.get_sample_value(name, labels)  # noqa: E731
    assert value("dashrl_eval_accuracy", eval="greedy_only", mode="greedy") == pytest.approx(1 / 3)
    assert value("dashrl_eval_accuracy", eval="sampled", mode="sampled") == pytest.approx(0.5)
    assert value("dashrl_eval_accuracy", eval="sampled", mode="greedy") is None
    assert value("dashrl_sampler_eval_pass_at_k", eval="sampled", k="2") == pytest.approx(11 / 18)
    info = heartbeat_info([first, second])
    assert info == pytest.approx({"eval_accuracy": 1 / 3, "eval_version": 3.0, "eval_accuracy:greedy_only": 1 / 3,
                                  "eval_accuracy:sampled": 0.5})


def test_default_eval_keeps_todays_fields(tmp_path, pool):
    tok = build_tokenizer()
    problems = [Problem(i, f"q{i}", f"a{i}") for i in range(3)]
    suite = build_suite([EvalSet(EvalConfig(name="held_out", size=3), problems, EXACT, "")], PromptRenderer(tok, ""),
                        pool, SamplingSettings(n=4, temperature=0.9), 64, tmp_path)
    (res,) = suite.run(ScriptedBackend(tok), version=0)
    row = json.loads((tmp_path / "eval.jsonl").read_text())
    for key in ("version", "greedy_accuracy", "sampled_accuracy", "greedy_reward_mean", "sampled_reward_mean",
                "num_problems", "seconds", "time"):
        assert key in row, key
    # one sample per problem (n=1), as before named evals: problem 0 and 2 get their first sample right
    assert row["greedy_accuracy"] == pytest.approx(1 / 3) and row["sampled_accuracy"] == pytest.approx(2 / 3)
    assert row["samples"] == 1
    assert heartbeat_info([res])["eval_accuracy_sampled"] == pytest.approx(2 / 3)


def test_problems_over_the_prompt_limit_are_skipped(tmp_path, pool):
    tok = build_tokenizer()
    problems = [Problem(0, "q0", "a0"), Problem(1, "x" * 100 + "q1", "a1")]
    suite = build_suite([EvalSet(EvalConfig(name="e"), problems, EXACT, "")], PromptRenderer(tok, ""), pool,
                        SamplingSettings(), 20, None)
    assert [p.index for p in suite.evaluators[0].problems] == [0]
