"""The train step on a real tiny model: packing does not change the update; PPO update counts."""

import numpy as np
import pytest
from transformers import AutoModelForCausalLM

from services.learner.microbatches import TrainSample
from services.learner.model import placement
from services.learner.trainer import Trainer
from shared.config import RunConfig
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


def _samples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p, c = int(rng.integers(2, 6)), int(rng.integers(1, 7))
        out.append(TrainSample(f"b{i}", rng.integers(4, 100, p).astype(np.int32), rng.integers(4, 100, c).astype(np.int32),
                               (-rng.random(c) * 3).astype(np.float32), float(rng.normal())))
    return out


def _trainer(model_dir, algo=None, **learner):
    cfg = RunConfig.model_validate({"model": {"path": str(model_dir)}, "learner": {"lr": 1e-2, **learner},
                                    "algo": algo or {}})
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()
    return Trainer(model, cfg, placement(cfg.model, cfg.learner))


def test_micro_batch_packing_does_not_change_the_update(model_dir):
    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    one = _trainer(model_dir, train_batch_size=6, micro_batch_size=6, micro_batch_tokens=10_000)
    many = _trainer(model_dir, train_batch_size=6, micro_batch_size=2, micro_batch_tokens=16)
    s1, s2 = one.train_step(_samples(), step=1), many.train_step(_samples(), step=1)
    assert s1.samples == s2.samples == 6 and s1.tokens == s2.tokens == s1.tokens_processed
    assert s1.loss == pytest.approx(s2.loss, abs=1e-6) and s1.grad_norm == pytest.approx(s2.grad_norm, rel=1e-5)
    a, b = one.model.state_dict(), many.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-3  # it did move
    assert s1.ratio_mean != 1.0  # the samples' log-probs are not the model's: real ratios


@pytest.mark.parametrize("ppo, updates", [("none", 1), ("multi", 3), ("mini", 3)])
def test_ppo_modes_run_k_updates(model_dir, ppo, updates):
    tr = _trainer(model_dir, train_batch_size=6, micro_batch_size=2, warmup_steps=1, max_steps=4,
                  algo={"ppo": ppo, "ppo_epochs": 3} if ppo != "none" else {})
    stats = tr.train_step(_samples(), step=1)
    assert stats.updates == tr.updates == updates
    # warm-up over 1 step = `updates` optimizer updates; the last one ran at lr x updates / (updates + 1)
    assert stats.lr == pytest.approx(1e-2 * updates / (updates + 1))
    assert stats.tokens_processed == (stats.tokens if ppo != "multi" else 3 * stats.tokens)


@pytest.mark.parametrize("ppo", ["none", "multi", "mini"])
def test_completion_tokens_count_each_sample_once(model_dir, ppo):
    """A step's completion tokens are its batch's, however many updates it ran (no top-k, so
    no token is left out of the loss as outside the sampler's set)."""
    cfg = RunConfig.model_validate({"model": {"path": str(model_dir)}, "sampler": {"top_k": -1},
                                    "learner": {"lr": 1e-2, "train_batch_size": 6, "micro_batch_size": 2},
                                    "algo": {"ppo": ppo, "ppo_epochs": 3} if ppo != "none" else {}})
    tr = Trainer(AutoModelForCausalLM.from_pretrained(model_dir).train(), cfg, placement(cfg.model, cfg.learner))
    assert tr.train_step(_samples(), step=1).completion_tokens == sum(len(s.completion_ids) for s in _samples())


def test_kl_term_loads_and_uses_reference(model_dir):
    from services.learner.model import load_reference

    tr = _trainer(model_dir, train_batch_size=6, micro_batch_size=6, algo={"kl_beta": 0.5})
    tr.ref = load_reference(str(model_dir), tr.cfg.model, tr.place)
    first = tr.train_step(_samples(), step=1)
    second = tr.train_step(_samples(), step=2)
    assert first.kl == pytest.approx(0.0, abs=1e-7)  # policy == reference before any update
    assert second.kl > 1e-6


def test_step_reports_mismatch_and_truncation(model_dir):
    # the samples' log-probs are random, not the model's: a large mismatch, measured once per step
    tr = _trainer(model_dir, train_batch_size=6, micro_batch_size=2, algo={"is_cap": 1.5, "is_level": "sequence"})
    samples = _samples()
    for s in samples:  # sampler log-probs around -4.5, the model's ~ -3.9 (top-50 of ~100): ratios > 1
        s.logprobs = s.logprobs - 3.0
    stats = tr.train_step(samples, step=1)
    m = stats.mismatch
    assert set(m) == {"logp_abs_diff_mean", "logp_abs_diff_max", "kl_k3", "ratio_mean", "ratio_p99", "ratio_max",
                      "ratio_outside_fraction", "excluded_fraction"}
    assert m["logp_abs_diff_max"] >= m["logp_abs_diff_mean"] > 0.1 and m["kl_k3"] > 0
    assert m["ratio_max"] >= m["ratio_p99"] and m["ratio_outside_fraction"] > 0
    assert 0 < stats.truncated_fraction <= 1
    assert 0 < m["excluded_fraction"] < 1  # random ids outside the top-50 set: left out, not NaN
    assert np.isfinite(stats.loss) and np.isfinite(stats.grad_norm)
    assert stats.ratio_mean == pytest.approx(m["ratio_mean"], rel=1e-5)  # one update: the same tokens


def _filtered_pair():
    """A batch with zero-advantage samples (what gradient filtering drops), and the batch without them."""
    full = _samples(8, seed=3)
    for i, s in enumerate(full):
        s.advantage = 0.0 if i % 2 == 0 else (1.0 if i % 4 == 1 else -1.0)
    return full, [s for s in full if s.advantage != 0.0]


@pytest.mark.parametrize("aggregation", ["dash", "token", "sequence"])
def test_normalize_by_generated_makes_filtering_a_pure_compute_saving(model_dir, aggregation):
    from shared.algo.loss import GeneratedCounts

    full, kept = _filtered_pair()
    counts = GeneratedCounts(len(full), sum(len(s.completion_ids) for s in full))
    # no clipping: the samples' made-up log-probs put every ratio far from 1
    algo = {"loss_aggregation": aggregation, "clip_eps_low": 1.0, "clip_eps_high": 1e3}
    unfiltered = _trainer(model_dir, algo=algo, train_batch_size=8, micro_batch_size=3)
    by_generated = _trainer(model_dir, algo={**algo, "normalize_by": "generated"}, train_batch_size=8, micro_batch_size=3)
    by_kept = _trainer(model_dir, algo=algo, train_batch_size=8, micro_batch_size=3)
    s_full = unfiltered.train_step(full, step=1)
    s_gen = by_generated.train_step(kept, step=1, generated=counts)
    s_kept = by_kept.train_step(kept, step=1, generated=counts)  # normalize_by: kept ignores the counts
    assert s_full.grad_norm > 1e-3
    assert s_gen.loss == pytest.approx(s_full.loss, rel=1e-5) and s_gen.grad_norm == pytest.approx(s_full.grad_norm, rel=1e-5)
    # normalised by the kept samples, the same gradient is larger (half the samples were dropped)
    assert s_kept.grad_norm > 1.3 * s_full.grad_norm
    # the same Adam update, up to float noise (other micro-batch groupings; Adam's first step is ~lr per weight)
    a, b = unfiltered.model.state_dict(), by_generated.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_generated_counts_never_shrink_the_kept_normaliser():
    from shared.algo.loss import BatchTotals, GeneratedCounts

    t = BatchTotals.of([3, 4, 5], max_len_norm=8)
    assert t.over_generated(GeneratedCounts(2, 6)) == t  # stats smaller than what arrived: keep the counts
    mini = t.over_generated(GeneratedCounts(12, 48), share=0.5)
    assert (mini.sequences, mini.tokens, mini.max_len) == (6, 24, 8)
