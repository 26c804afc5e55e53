"""Sync mode with several samplers: the shards' parts of a version's quota sum to the quota."""

import pytest

from services.sampler.loop import sync_share


@pytest.mark.parametrize("need, shards", [(256, 1), (256, 4), (10, 3), (2, 4)])
def test_shares_sum_to_the_quota_and_differ_by_at_most_one(need, shards):
    parts = [sync_share(need, shards, i) for i in range(shards)]
    assert sum(parts) == need and max(parts) - min(parts) <= 1


def test_by_hand():
    assert [sync_share(10, 3, i) for i in range(3)] == [4, 3, 3]
    assert sync_share(256, 1, 0) == 256  # one sampler: the whole update, as before
