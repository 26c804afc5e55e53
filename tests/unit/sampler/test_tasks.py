"""The sampler's prompt order: seeded, crossing epochs, disjoint shards. (The task's problems, its
split and prompt rendering are shared/tasks: tests/unit/shared/.)"""

import pytest

from services.sampler.tasks import PromptOrder, PromptRenderer, load_task
from shared import tasks


def test_shards_are_disjoint_and_cover_every_problem_each_epoch():
    n, shards = 103, 4
    orders = [PromptOrder(n, seed=5, num_shards=shards, shard_index=k) for k in range(shards)]
    for epoch in range(2):
        parts = [set(o.shard(epoch).tolist()) for o in orders]
        assert sum(len(p) for p in parts) == n
        assert set().union(*parts) == set(range(n))


def test_order_is_seeded_and_crosses_epochs():
    a, b, c = PromptOrder(10, seed=1), PromptOrder(10, seed=1), PromptOrder(10, seed=2)
    first = a.take(7) + a.take(7)  # crosses into epoch 1
    assert first == b.take(14)
    assert sorted(first[:10]) == list(range(10))  # epoch 0 is a permutation
    assert first[10:] == PromptOrder(10, seed=1).shard(1)[:4].tolist()
    assert c.take(10) != PromptOrder(10, seed=1).take(10)


def test_bad_shard_config_is_refused():
    with pytest.raises(ValueError):
        PromptOrder(10, seed=0, num_shards=2, shard_index=2)
    with pytest.raises(ValueError):
        PromptOrder(1, seed=0, num_shards=2, shard_index=0)


def test_the_sampler_reexports_the_shared_task_vocabulary():
    # Other sampler modules (and helpers) import these names from here.
    assert PromptRenderer is tasks.PromptRenderer and load_task is tasks.load_task
