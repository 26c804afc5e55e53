"""FSDP bookkeeping without a process group: equal pass counts per rank, checkpoint kinds."""

import pytest

from services.learner.fsdp import NULL_PASS, check_resumable, even_passes


@pytest.mark.parametrize("total, world", [(5, 2), (1, 2), (3, 4), (8, 4), (0, 2)])
def test_every_rank_makes_the_busiest_ranks_number_of_passes(total, world):
    per_rank = [list(even_passes(iter(list(range(total))[r::world]), total, world)) for r in range(world)]
    assert len({len(p) for p in per_rank}) == 1  # the same count of collectives everywhere
    assert len(per_rank[0]) == -(-total // world)
    real = sorted(x for p in per_rank for x in p if x is not NULL_PASS)
    assert real == list(range(total))  # each micro-batch once, on its own rank


def test_one_rank_gets_no_null_passes():
    assert list(even_passes(iter([7, 8]), 2, 1)) == [7, 8]


def test_checkpoint_resumes_only_under_the_parallel_that_wrote_it(tmp_path):
    ddp, fsdp = tmp_path / "step-3", tmp_path / "step-6"
    (ddp / "model").mkdir(parents=True)
    (fsdp / "dcp").mkdir(parents=True)
    check_resumable(ddp, "ddp")
    check_resumable(fsdp, "fsdp")
    with pytest.raises(RuntimeError, match="written with learner.parallel=fsdp"):
        check_resumable(fsdp, "ddp")
    with pytest.raises(RuntimeError, match="written with learner.parallel=ddp"):
        check_resumable(ddp, "fsdp")
