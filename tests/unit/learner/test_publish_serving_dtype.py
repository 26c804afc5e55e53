"""The learner publishes weight versions in the served dtype, whatever it trains in, and the
sampler's transformers backend loads them: a CPU learner training float32 for a model served in
bfloat16, through the learner's own publish path, a real weight store and a real Redis."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from services.learner.microbatches import TrainSample
from services.learner.checkpoint import LearnerState
from services.learner.distributed import DistContext
from services.learner.loop import Learner
from services.learner.parts import Parts
from services.learner.model import load_policy, placement
from services.learner.trainer import Trainer
from services.sampler.backends import SamplingSettings, make_backend
from shared.broadcast import Broadcast
from shared.config import RunConfig
from shared.keys import RunKeys
from shared.protocol import WeightsPublished
from shared.weights import make_store
from tests.helpers.tiny_model import build_tiny_model


def _samples(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [TrainSample(f"b{i}", rng.integers(4, 100, 5).astype(np.int32), rng.integers(4, 100, 6).astype(np.int32),
                        np.full(6, -4.6, np.float32), float(rng.choice([-1, 1]))) for i in range(n)]


@pytest.mark.parametrize("tied", [False, True])
def test_learner_publishes_bfloat16_and_the_sampler_serves_it(tmp_path, redis_client, tied):
    start = build_tiny_model(tmp_path / "start", tie_word_embeddings=tied)
    run_id = f"pub-{int(tied)}"
    cfg = RunConfig.model_validate({
        "run_id": run_id, "output_dir": str(tmp_path / "runs"),
        "model": {"path": str(start), "dtype": "bfloat16"},
        "sampler": {"backend": "transformers"},
        "learner": {"lr": 1e-3, "device": "cpu", "train_batch_size": 4, "micro_batch_size": 4},
    })
    place = placement(cfg.model, cfg.learner)
    assert (place.precision, place.param_dtype, place.serve_dtype) == ("fp32", torch.float32, "bfloat16")
    model, tok = load_policy(str(start), cfg.model, place)
    trainer = Trainer(model, cfg, place)
    trainer.train_step(_samples(), step=1)

    run_dir, keys = tmp_path / "runs" / run_id, RunKeys(run_id)
    store = make_store("fs", run_id=run_id, root=run_dir / "weights", r=None)
    parts = Parts(reader=None, store=store, announce=Broadcast(redis_client, keys.weights, expect=WeightsPublished),
                  runstate=None, r=redis_client, trained_key=keys.trained)
    learner = Learner(cfg, run_dir, DistContext(), trainer, tok, LearnerState(step=1, policy_version=1), parts)
    assert learner.publisher is not None  # a whole model on a lean store: published off the step
    learner._publish()
    learner._wait_published()  # the write, hash and announcement run on a background thread

    # the sampler's side: follow the announcement, fetch verified, load into the configured backend
    [(_, msg)] = Broadcast(redis_client, keys.weights, expect=WeightsPublished).read_after("0")
    path = store.fetch(msg)
    with safe_open(str(Path(path) / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(name).dtype for name in f.keys()} == {torch.bfloat16}
    backend = make_backend(cfg, start)
    assert backend.dtype == torch.bfloat16  # served as configured
    start_params = {n: p.detach().clone() for n, p in backend.model.named_parameters()}
    backend.load_weights(Path(path))
    master = dict(model.named_parameters())
    served = dict(backend.model.named_parameters())
    assert set(served) == set(master)
    assert all(torch.equal(p, master[n].detach().to(torch.bfloat16)) for n, p in served.items())
    assert any(not torch.equal(p, start_params[n]) for n, p in served.items())  # the step's change arrived
    fresh = make_backend(cfg, path)  # a sampler starting from the version serves the same policy
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    assert backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist() == \
        fresh.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist()
