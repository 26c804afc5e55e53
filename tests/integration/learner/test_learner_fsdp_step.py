"""One FSDP2 step on 2 gloo ranks makes the update one unsharded rank makes on the same batch.

The step's 12 samples pack into an odd number of micro-batches, so one rank also runs a
zero-weight pass (`fsdp.even_passes`); prompt sharing and the chunked output layer (read
inside the root unit's forward) are on, as by default; the sharded ranks also recompute each
decoder layer (`activation_checkpointing`), which must not change the update either. In float32:
the bfloat16 policy (layers all-gathered in bfloat16) is only checked to train.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.helpers.fsdp_ranks import run_ranks, train_single
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("fsdp") / "tiny")


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_sharded_ranks_match_one_unsharded(model_dir, tmp_path):
    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    single, single_stats = train_single(model_dir, {})
    sharded, stats = run_ranks(2, model_dir, tmp_path / "fsdp", {"activation_checkpointing": True})
    assert _max_diff(single, start) > 1e-3  # the step moved the weights
    assert _max_diff(sharded, single) < 1e-5
    assert stats["tokens_processed"] == single_stats["tokens_processed"]  # the null pass counts no tokens
    assert stats["grad_norm"] == pytest.approx(single_stats["grad_norm"], rel=1e-5)
    assert stats["loss"] == pytest.approx(single_stats["loss"], rel=1e-5, abs=1e-7)


def test_bf16_layers_under_autocast_train(model_dir, tmp_path):
    """bfloat16 compute is not float32's: this checks the policy runs and keeps float32 masters."""
    sharded, stats = run_ranks(2, model_dir, tmp_path / "bf16", {"precision": "bf16-autocast"})
    assert all(t.dtype == torch.float32 for t in sharded.values())  # float32 master weights
    assert all(torch.isfinite(t).all() for t in sharded.values()) and stats["grad_norm"] > 0
    assert _max_diff(sharded, AutoModelForCausalLM.from_pretrained(model_dir).state_dict()) > 1e-3


def test_packed_rows_shard_alike(model_dir, tmp_path):
    """`learner.packing`: unpadded rows (segment attention) through the sharded layers."""
    single, _ = train_single(model_dir, {"packing": True})
    sharded, _ = run_ranks(2, model_dir, tmp_path / "packed", {"packing": True})
    assert _max_diff(sharded, single) < 1e-5
