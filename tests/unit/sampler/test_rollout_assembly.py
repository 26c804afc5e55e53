"""Batch assembly: advantages per prompt group, gradient filtering, stats before filtering,
and a batch that survives the wire."""

import numpy as np
import pytest

from services.sampler.backends import Completion
from services.sampler.rollout_assembly import Generated, assemble
from services.sampler.evaluation import due
from shared.config import AlgoConfig
from shared.protocol import FinishReason, RolloutBatch, decode, encode


def comp(n: int, stop: bool = True) -> Completion:
    return Completion(np.arange(n, dtype=np.int32) + 10, -np.full(n, 0.5, dtype=np.float32),
                      FinishReason.STOP if stop else FinishReason.LENGTH)


def make_gen() -> Generated:
    # prompt 0: rewards differ (kept); prompt 1: all equal (no gradient, filtered)
    outputs = [[comp(3), comp(5, stop=False)], [comp(2), comp(4)]]
    return Generated(prompts=[[1, 2], [3, 4, 5]], problem_ids=[7, 9], outputs=outputs, policy_version=3,
                     generate_s=2.0, first_group_id=40)


def test_assemble_filters_flat_groups_and_keeps_stats():
    batch, stats = assemble(make_gen(), np.array([1.0, 0.0, 1.0, 1.0]), AlgoConfig(filter_threshold=0.1),
                            run_id="r", sampler_id="s", extra_stats={"score_s": 0.25})
    assert len(batch) == 2 and batch.policy_version == 3
    # group of two with rewards (1, 0): mean .5, unbiased std .7071 -> A = +-.5/(.7071+1e-4)
    np.testing.assert_allclose(batch.advantages, [0.5 / (0.5**0.5 + 1e-4), -0.5 / (0.5**0.5 + 1e-4)], rtol=1e-5)
    assert batch.group_ids.tolist() == [40, 40]
    assert batch.prompt_lens.tolist() == [2, 2] and batch.completion_lens.tolist() == [3, 5]
    assert batch.finish_reasons.tolist() == [FinishReason.STOP, FinishReason.LENGTH]
    assert stats["num_samples"] == 4 and stats["num_kept"] == 2 and stats["kept_fraction"] == 0.5
    assert stats["reward_mean"] == 0.75
    assert stats["completion_len_mean"] == 3.5 and stats["completion_len_max"] == 5
    assert stats["truncated_fraction"] == 0.25
    assert stats["tokens_per_s"] == 7.0 and stats["score_s"] == 0.25
    assert stats["spans_versions"] == 0.0 and stats["policy_version_newest"] == 3.0
    back = decode(encode(batch), expect=RolloutBatch)
    assert back.stats == batch.stats and back.completion_ids.tolist() == batch.completion_ids.tolist()


def test_a_call_that_swapped_between_steps_says_so_and_keeps_the_oldest_stamp():
    gen = make_gen()
    gen.newest_version = 4  # v4 went in between two engine steps of this v3 call
    batch, stats = assemble(gen, np.array([1.0, 0.0, 1.0, 1.0]), AlgoConfig(), run_id="r", sampler_id="s")
    assert batch.policy_version == 3  # the learner's staleness rule sees the oldest
    assert stats["spans_versions"] == 1.0 and stats["policy_version_newest"] == 4.0


def test_threshold_zero_still_drops_zero_advantage_and_mismatch_is_refused():
    batch, _ = assemble(make_gen(), np.zeros(4), AlgoConfig(filter_threshold=0.0), run_id="r", sampler_id="s")
    assert len(batch) == 0 and batch.stats["kept_fraction"] == 0.0
    with pytest.raises(ValueError):
        assemble(make_gen(), np.zeros(3), AlgoConfig(), run_id="r", sampler_id="s")


def test_filtering_off_keeps_every_sample_zero_advantage_too():
    batch, stats = assemble(make_gen(), np.array([1.0, 0.0, 1.0, 1.0]), AlgoConfig(filter_threshold=None),
                            run_id="r", sampler_id="s")
    assert len(batch) == 4 and stats["kept_fraction"] == 1.0
    assert batch.advantages[2:].tolist() == [0.0, 0.0]  # the flat group rides along, carrying no gradient


def test_eval_due_when_crossing_a_multiple():
    assert due(0, None, 5) and not due(0, None, 0)
    assert not due(4, 0, 5) and due(5, 0, 5) and due(7, 3, 5) and not due(9, 5, 5)
