"""Micro-batch packing, PPO update groups and collation, checked by hand."""

import numpy as np
import pytest
import torch

from services.learner.microbatches import TrainSample, collate, pack_micro_batches, train_samples, update_groups
from shared.protocol import RolloutBatch, Sample


def test_pack_respects_token_budget_and_sample_cap():
    lengths = [10, 3, 7, 3, 12, 5]
    groups = pack_micro_batches(lengths, max_tokens=24, max_samples=3)
    # longest first: 12,10 (2x12=24) | 7,5,3 (3x7=21) | 3
    assert groups == [[4, 0], [2, 5, 1], [3]]
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:
        assert len(g) * max(lengths[i] for i in g) <= 24 and len(g) <= 3


def test_pack_oversized_sample_alone_and_sample_cap():
    assert pack_micro_batches([50, 4, 4], max_tokens=16, max_samples=8) == [[0], [1, 2]]
    assert pack_micro_batches([1] * 5, max_tokens=100, max_samples=2) == [[0, 1], [2, 3], [4]]
    assert pack_micro_batches([], 10, 2) == []
    with pytest.raises(ValueError):
        pack_micro_batches([1], 0, 1)


def test_update_groups():
    assert update_groups(4, "none", 1, seed=0) == [[0, 1, 2, 3]]
    assert update_groups(3, "multi", 2, seed=0) == [[0, 1, 2], [0, 1, 2]]
    mini = update_groups(10, "mini", 3, seed=5)
    assert [len(g) for g in mini] == [4, 3, 3]
    assert sorted(i for g in mini for i in g) == list(range(10))
    assert mini == update_groups(10, "mini", 3, seed=5)  # every rank computes the same split
    assert mini != update_groups(10, "mini", 3, seed=6)
    assert len(update_groups(2, "mini", 4, seed=0)) == 2  # never an empty mini-batch


def _sample(p, c, lp, adv):
    return TrainSample("b", np.array(p, np.int32), np.array(c, np.int32), np.array(lp, np.float32), adv)


def test_collate_places_completion_targets():
    mb = collate([_sample([5, 6], [7, 8, 9], [-0.1, -0.2, -0.3], 1.5), _sample([4], [3], [-0.7], -1.0)], pad_id=0)
    assert mb.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 3, 0, 0, 0]]
    assert mb.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert mb.targets.tolist() == [[6, 7, 8, 9], [3, 0, 0, 0]]
    # position 1 (token 6) predicts 7: the first completion token
    assert mb.loss_mask.tolist() == [[0, 1, 1, 1], [1, 0, 0, 0]]
    assert torch.allclose(mb.old_logprobs, torch.tensor([[0, -0.1, -0.2, -0.3], [-0.7, 0, 0, 0]]))
    assert mb.advantages.tolist() == [1.5, -1.0] and mb.num_tokens == 7


def test_train_samples_drops_unlearnable_rows():
    rows = [Sample(np.array([1, 2], np.int32), np.array([3], np.int32), np.array([-1.0], np.float32), 1, 0.5, 0),
            Sample(np.array([1], np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, -0.5, 0),
            Sample(np.zeros(0, np.int32), np.array([3], np.int32), np.array([-1.0], np.float32), 0, -0.5, 0)]
    batch = RolloutBatch.from_samples(rows, run_id="r", batch_id="b1", sampler_id="s", policy_version=0, created_at=0.0)
    kept, dropped = train_samples(batch)
    assert dropped == 2 and len(kept) == 1 and kept[0].batch_id == "b1" and kept[0].length == 3
