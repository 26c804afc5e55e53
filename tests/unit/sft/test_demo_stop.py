"""The start policy's SFT stopping rule: coarse checks, fine checks once the climb begins, and
fresh attempts when one reaches its cap without the target (pure logic; the build itself is
tests/integration/sft/test_demo_policy_cache.py)."""

from services.sft.demo_policy import DemoRecipe
from services.sft.demo_stop import attempt_seed, sft_attempts, sft_stop


def _drive(recipe, scores, steps):
    it, seen = iter(scores), []
    stop = sft_stop(recipe, lambda: next(it), lambda m: None, seen)
    fired = next((s for s in steps if stop(s)), None)  # train_sft ends at the first True
    return fired, seen


def test_sft_stops_at_the_first_check_on_target_after_the_minimum():
    recipe = DemoRecipe(sft_until=0.45, sft_min_steps=300, fine_from=0.99)  # never fine: every 50 steps
    fired, seen = _drive(recipe, [0.30, 0.44, 0.46, 0.90], range(100, 450, 10))
    assert fired == 400
    assert seen[:3] == [(300, 0.30), (350, 0.44), (400, 0.46)]  # no check (no eval) before the minimum


def test_checks_tighten_to_fine_every_once_a_check_reaches_fine_from():
    """Below fine_from a check every 50 steps; from the first check at fine_from on, every 10, so
    a climb of 17 points in 50 steps (24.5% -> 41.2%, seen on one machine) stops near the target."""
    recipe = DemoRecipe(sft_until=0.30, sft_min_steps=300, check_every=50, fine_every=10, fine_from=0.15)
    fired, seen = _drive(recipe, [0.05, 0.10, 0.245, 0.26, 0.29, 0.31, 0.35], range(10, 1000, 10))
    assert [s for s, _ in seen] == [300, 350, 400, 410, 420, 430]
    assert fired == 430 and seen[-1] == (430, 0.31)


def test_without_a_target_sft_runs_its_steps_and_never_evaluates():
    def score():
        raise AssertionError("no check without sft_until")

    stop = sft_stop(DemoRecipe(sft_until=None), score, lambda m: None, [])
    assert not any(stop(s) for s in range(0, 2000, 10))
    assert DemoRecipe(sft_until=None).digest() != DemoRecipe().digest()


def _fake_train(curves):
    """train(attempt, stop): asks stop every 10 steps along that attempt's accuracy curve."""
    calls, scores = [], []

    def train(attempt, stop):
        calls.append(attempt)
        curve = iter(curves[attempt])
        for step in range(10, 1510, 10):
            scores.append(next(curve, 0.0))
            if stop(step):
                return [0.1] * step
        return [0.1] * 1500
    return train, calls, (lambda: scores[-1])


def test_an_attempt_that_never_reaches_the_target_is_redone_with_a_new_seed():
    recipe = DemoRecipe(seed=3, sft_attempts=3)
    stall, climb = [0.05] * 150, [0.05] * 64 + [0.20, 0.25, 0.32] + [0.5] * 80  # steps 650, 660, 670
    train, calls, score = _fake_train([stall, climb, climb])
    got = sft_attempts(recipe, train, score, lambda m: None)
    assert calls == [0, 1]
    assert [(a["attempt"], a["steps"], a["reached"]) for a in got["attempts"]] == [(0, 1500, False), (1, 670, True)]
    assert [a["seed"] for a in got["attempts"]] == [attempt_seed(3, 0), attempt_seed(3, 1)] and attempt_seed(3, 0) == 3
    assert len(got["losses"]) == 670 and got["checks"][-1] == (670, 0.32)


def test_when_no_attempt_reaches_the_target_the_last_is_kept():
    train, calls, score = _fake_train([[0.05] * 150] * 2)
    got = sft_attempts(DemoRecipe(sft_attempts=2), train, score, lambda m: None)
    assert calls == [0, 1] and not any(a["reached"] for a in got["attempts"]) and len(got["losses"]) == 1500
