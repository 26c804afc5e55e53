"""LoRA in the learner (`model.lora`): only the adapters train, a version is the adapter alone
(published and verified like any version), and `final/` loads as a plain transformers model."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.lora import ADAPTER_DIR, apply_lora, save_final_model
from services.learner.microbatches import TrainSample
from services.learner.model import placement
from services.learner.trainer import Trainer
from shared.config import RunConfig
from shared.configio import ConfigError, load_config
from shared.weights import MANIFEST, WeightsCorrupt, is_adapter, make_store
from tests.helpers.lora_models import lora_policy
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


def _samples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [TrainSample(f"b{i}", rng.integers(4, 100, 4).astype(np.int32), rng.integers(4, 100, 5).astype(np.int32),
                        (-rng.random(5) * 3).astype(np.float32), float(rng.normal())) for i in range(n)]


def _cfg(model_dir, lora):
    return RunConfig.model_validate({"model": {"path": str(model_dir), "lora": lora},
                                     "learner": {"lr": 1e-2, "train_batch_size": 6, "micro_batch_size": 6}})


def test_lora_config_is_typed_and_off_by_default(model_dir, tmp_path):
    assert RunConfig().model.lora is None  # full fine-tuning
    cfg = _cfg(model_dir, {"r": 4, "alpha": 8, "target_modules": ["q_proj"]})
    assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.lora.dropout) == (4, 8.0, 0.0)
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{path: {model_dir}, lora: {{r: 4, rank: 8}}}}\n")
    with pytest.raises(ConfigError, match="rank"):  # extra="forbid"
        load_config(str(path), [])
    path.write_text(f"model: {{path: {model_dir}, lora: {{r: 4}}}}\n")
    assert load_config(str(path), []).model.lora.target_modules[0] == "q_proj"
    with pytest.raises(ConfigError, match="model.lora.r"):
        load_config(str(path), ["model.lora.r=0"])


def test_only_the_adapters_train(model_dir):
    cfg = _cfg(model_dir, {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    model = apply_lora(AutoModelForCausalLM.from_pretrained(model_dir).train(), cfg.model.lora)
    trainer = Trainer(model, cfg, placement(cfg.model, cfg.learner))
    lora = {n for n, p in model.named_parameters() if "lora_" in n}
    assert len(lora) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    assert {id(p) for p in trainer.params} == {id(p) for n, p in model.named_parameters() if n in lora}
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == {id(p) for p in trainer.params}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train_step(_samples(), step=1)
    after = dict(model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and moved <= lora  # B starts at 0, so A gets no gradient at step 1; B moves
    assert {n for n in moved if "lora_B" in n} == {n for n in lora if "lora_B" in n}


@pytest.mark.parametrize("kind", ["fs", "redis"])
def test_a_version_is_the_adapter_and_verifies(model_dir, tmp_path, redis_client, kind):
    model, _ = lora_policy(model_dir)
    store = make_store(kind, run_id=f"lora-{kind}", root=tmp_path / "w", r=redis_client)
    msg = store.publish(model, None, 1, 1, dtype="bfloat16")
    path = store.fetch(msg, dest=tmp_path / "copy")
    manifest = json.loads((path / MANIFEST).read_bytes())
    assert manifest["adapter"] is True and manifest["dtype"] == "bfloat16" and is_adapter(path)
    assert {f["name"] for f in manifest["files"]} == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    full = store.publish(AutoModelForCausalLM.from_pretrained(model_dir), None, 2, 2, dtype="bfloat16")
    assert msg.byte_size < full.byte_size / 5  # 6 small A/B pairs against every weight
    if kind == "fs":  # a tampered adapter is refused like any tampered version
        (Path(msg.location) / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    else:
        redis_client.hset(msg.location, "adapter_model.safetensors:0", b"\0" * 16)
    with pytest.raises(WeightsCorrupt):
        store.fetch(msg, dest=tmp_path / "again")


def test_final_folder_is_the_merged_model(model_dir, tmp_path):
    model, _ = lora_policy(model_dir)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = copy.deepcopy(model).merge_and_unload()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(model_dir)(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-2  # the adapter changes the policy
    save_final_model(model, None, tmp_path / "final")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "final")  # merged: no peft needed
    from peft import PeftModel

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir),
                                       tmp_path / "final" / ADAPTER_DIR).merge_and_unload()
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, want, atol=1e-5)
        assert torch.allclose(merged(input_ids=ids).logits, want, atol=1e-5)


def test_a_checkpoint_resumes_the_adapter_and_its_optimizer(model_dir, tmp_path):
    """What `dashrl learner --resume` does with `model.lora`: the starting model again, the
    checkpoint's adapter on it (trainable), the optimizer state of the adapters' parameters."""
    from services.learner.checkpoint import LearnerState, load_checkpoint, save_checkpoint

    cfg = _cfg(model_dir, {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    place = placement(cfg.model, cfg.learner)
    model = apply_lora(AutoModelForCausalLM.from_pretrained(model_dir).train(), cfg.model.lora)
    trainer = Trainer(model, cfg, place)
    trainer.train_step(_samples(), step=1)
    ckpt = save_checkpoint(tmp_path, model, None, trainer.state_dict(), LearnerState(step=1, policy_version=1))
    assert not (ckpt / "model" / "model.safetensors").exists()  # the adapter only
    path, trainer_state, state = load_checkpoint(ckpt, place.device)
    resumed = apply_lora(AutoModelForCausalLM.from_pretrained(model_dir).train(), cfg.model.lora, adapter=path)
    again = Trainer(resumed, cfg, place)
    again.load_state_dict(trainer_state)
    assert state.step == 1 and again.updates == 1 and len(again.params) == len(trainer.params) == 8
    want = dict(model.named_parameters())
    assert all(torch.equal(p.detach(), want[n].detach()) for n, p in resumed.named_parameters())
    s1, s2 = trainer.train_step(_samples(seed=1), step=2), again.train_step(_samples(seed=1), step=2)
    assert s1.loss == pytest.approx(s2.loss, abs=1e-6)
    moved = dict(model.named_parameters())
    assert all(torch.allclose(p.detach(), moved[n].detach(), atol=1e-6) for n, p in resumed.named_parameters())
