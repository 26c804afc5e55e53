"""benchmarks/findings/entries.py: every entry's overrides validate against the demo config
(`shared.configio.load_config`), and they say what the findings need."""

import pytest

from benchmarks import ROOT
from benchmarks.findings import entries as E
from shared.configio import load_config

CONFIG = str(ROOT / "configs" / "demo-cpu.yaml")
POLICY = "/tmp/findings/policies/seed1/demo-policy"


@pytest.mark.parametrize("entry", E.FINDING_RL)
def test_finding_entries_validate_and_keep_the_cosine(entry):
    cfg = load_config(CONFIG, E.finding_overrides(entry, 1, POLICY, 321))
    assert cfg.seed == 1 and cfg.model.path == POLICY and cfg.learner.max_steps == 321
    assert cfg.learner.schedule == "cosine"
    assert cfg.algo.kl_beta == (0.04 if entry == "kl" else 0.0)
    assert (cfg.algo.ppo, cfg.algo.ppo_epochs) == {"ppo-multi": ("multi", 2), "ppo-mini": ("mini", 2)}.get(
        entry, ("none", 1))


@pytest.mark.parametrize("entry", E.TIMING)
def test_timing_entries_are_the_comparisons(entry):
    base = load_config(CONFIG)
    ns = E.timing_namespace(2, 0.4, 600.0, CONFIG)
    sets = E.timing_overrides(entry, ns, POLICY, base.sampler.sampling_batch_prompts, base.sampler.group_size, 0.1)
    cfg = load_config(CONFIG, sets)
    assert cfg.seed == 2 and cfg.model.path == POLICY and cfg.learner.schedule == "constant"
    assert cfg.learner.micro_batch_size == 8 and cfg.sampler.eval_every == 5 and ns.full
    assert cfg.sampler.mode == ("async" if entry == "t-dash-async" else "sync")
    assert cfg.algo.kl_beta == (0.0 if entry in ("t-dash-nokl", "t-dash-async") else 0.04)
    assert (cfg.algo.filter_threshold is None) == (entry in ("t-grpo-paper", "t-preemptive"))


def test_entry_lists_and_horizons():
    assert E.parse_entries("kl, dash,t-dash") == ["dash", "kl", "t-dash"]  # run order, dash first
    with pytest.raises(ValueError, match="unknown entries"):
        E.parse_entries("dash,ppo")
    assert E.horizon("kl", 1000) == 1000 and E.horizon("t-dash", 1000) is None
    assert set(E.NEEDS_DASH) <= set(E.ENTRIES) and E.ENTRIES[0] == "dash"


def test_each_seed_has_its_own_start_policy_recipe():
    from benchmarks.findings.rl import recipe_hashes

    hashes = recipe_hashes(CONFIG, [0, 1, 2])
    assert len(set(hashes.values())) == 3 and recipe_hashes(CONFIG, [1]) == {1: hashes[1]}


def test_generated_length_is_the_sample_weighted_mean_of_the_calls():
    from benchmarks.findings.rl import generated_length

    calls = [{"num_samples": 256.0, "completion_len_mean": 6.0}, {"num_samples": 128.0, "completion_len_mean": 3.0},
             {"num_samples": 64.0}]  # a call logged before the field existed is left out
    assert generated_length(calls) == (256 * 6.0 + 128 * 3.0) / 384
    assert generated_length([{"num_samples": 8.0}]) is None
