"""Verifiers and the scoring pool: allowlist, math-verify, reasoning-gym, and every way a reward
call can fail (raise, NaN, timeout, a worker no signal reaches) scoring 0, counted, non-fatal."""

import pytest

from services.sampler.rewards import RewardPool, RewardSpec, check_allowed, math_reward, reward_spec
from shared.config import JsonlTask, ReasoningGymTask, TaskConfig
from shared.configio import ConfigError

HELPERS = "tests.helpers.sampler_rewards"


def fn_spec(name: str) -> RewardSpec:
    cfg = TaskConfig(reward=f"{HELPERS}:{name}", reward_allowlist=["tests.helpers."])
    return reward_spec(cfg)


def test_allowlist():
    check_allowed("shared.rewards:f", ["shared."])
    check_allowed("dashrl_rewards:f", ["dashrl_rewards."])
    with pytest.raises(ConfigError, match="not under"):
        check_allowed("os:system", ["shared.", "dashrl_rewards."])
    with pytest.raises(ConfigError, match="not under"):
        check_allowed("sharedevil:f", ["shared."])
    with pytest.raises(ConfigError, match="module:function"):
        check_allowed("shared.rewards", ["shared."])
    with pytest.raises(ConfigError, match="not under"):  # default allowlist refuses test helpers
        reward_spec(TaskConfig(reward=f"{HELPERS}:exact"))
    with pytest.raises(ConfigError, match="cannot import"):
        reward_spec(TaskConfig(reward=f"{HELPERS}:nope", reward_allowlist=["tests."]))


def test_default_verifiers_follow_the_source(tmp_path):
    assert reward_spec(TaskConfig(source=JsonlTask(path="x.jsonl"))).kind == "math"
    spec = reward_spec(TaskConfig(source=ReasoningGymTask(name="chain_sum", params={"min_terms": 2})))
    assert (spec.kind, spec.target, spec.params) == ("reasoning_gym", "chain_sum", (("min_terms", 2),))


def test_math_reward():
    assert math_reward("so the answer is \\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert math_reward("Total: 70 + 2 = 72.\n#### 72", "She pays 70 + 2.\n#### 72") == 1.0
    assert math_reward("\\boxed{71}", "72") == 0.0
    assert math_reward("no answer here", "72") == 0.0


@pytest.mark.process
def test_pool_scores_builtin_verifiers():
    pool = RewardPool(RewardSpec("reasoning_gym", "chain_sum"), timeout_s=10, workers=1)
    try:
        entry = {"question": "4 - 1 - 7 =", "answer": "-4", "metadata": {}}
        res = pool.score([("think... <answer>-4</answer>", "-4", entry), ("<answer>3</answer>", "-4", entry),
                          ("no tags", "-4", entry)])
        assert res.scores.tolist() == [1.0, 0.0, 0.0] and not res.failures
    finally:
        pool.close()


@pytest.mark.process
def test_failures_score_zero_are_counted_and_do_not_stop_scoring():
    specs = {"raises": "boom", "not_a_number": "nan", "slow": "slow"}
    for name, bad in specs.items():
        pool = RewardPool(fn_spec(name), timeout_s=0.5, workers=2)
        try:
            res = pool.score([("fine", "", {}), (bad, "", {}), ("fine", "", {})])
            assert res.scores.tolist() == [1.0, 0.0, 1.0], name
            kind = "timeout" if name == "slow" else "error"
            assert res.failures == {kind: 1}, name
            assert pool.score([("again", "", {})]).scores.tolist() == [1.0]  # the pool still works
        finally:
            pool.close()


@pytest.mark.process
def test_worker_beyond_signals_is_killed_and_pool_rebuilt():
    pool = RewardPool(fn_spec("hangs_unreachably"), timeout_s=0.3, workers=1)
    try:
        res = pool.score([("ok", "", {}), ("hang", "", {})])
        assert res.scores.tolist() == [1.0, 0.0]
        assert res.failures == {"hung": 1}
        assert pool.score([("ok", "", {})]).scores.tolist() == [1.0]
    finally:
        pool.close()


@pytest.mark.process
def test_job_queued_behind_a_long_job_is_not_judged_stuck():
    # One worker, 9 x 0.4 s calls ahead: the second job waits ~3.6 s, longer than stall_s (3 s),
    # but the pool keeps finishing calls, so nothing is "hung" and no worker is killed.
    pool = RewardPool(fn_spec("sleepy"), timeout_s=1.0, workers=1)
    try:
        first = pool.submit([(str(i), "", {}) for i in range(9)])
        second = pool.submit([("last", "", {})])
        assert second.result().failures == {} and first.result().failures == {}
        assert pool.generation == 0
    finally:
        pool.close()


@pytest.mark.process
def test_pool_still_importing_its_verifier_is_not_judged_stuck():
    # The worker imports its verifier for 3 s, longer than stall_s (2.3 s at timeout 0.3 s): the
    # stall clock starts once every worker is ready, so nothing is killed or counted as hung.
    pool = RewardPool(RewardSpec("function", "tests.helpers.slow_import_reward:always_one"), timeout_s=0.3, workers=1)
    try:
        res = pool.score([("a", "", {}), ("b", "", {})])
        assert res.scores.tolist() == [1.0, 1.0] and not res.failures and pool.generation == 0
    finally:
        pool.close()
