"""shared/sizing.py and shared/model_shapes.py: exact arithmetic on known shapes, and the effect
of each setting in the direction it must have (measured peaks: tests/integration/learner)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from shared.config import RunConfig
from shared.model_shapes import PRESETS, model_shape, shape_from_hf_config
from shared.sizing import GiB, LearnerSetup, estimate_learner, estimate_run, estimate_sampler

ROOT = Path(__file__).resolve().parents[3]
QWEN_05B = PRESETS["qwen2.5-0.5b"]


def test_preset_parameter_counts_are_the_published_ones():
    # the parameter counts of the released checkpoints (safetensors metadata / model cards)
    assert QWEN_05B.params == 494_032_768
    assert PRESETS["qwen2.5-1.5b"].params == 1_543_714_304
    assert PRESETS["qwen2.5-7b"].params == 7_615_616_512
    assert PRESETS["smollm2-135m"].params == 134_515_008


def test_config_json_of_a_real_torch_model_counts_its_parameters(tmp_path):
    from tests.helpers.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path / "m", tie_word_embeddings=True)
    from transformers import AutoModelForCausalLM

    want = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters())
    shape, source = model_shape(folder)
    assert shape.params == want and source.endswith("config.json")


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no config.json there and no preset"):
        model_shape(tmp_path / "nothing")
    assert model_shape("models/Qwen2.5-0.5B-Instruct")[0] == QWEN_05B
    with pytest.raises(ValueError, match="lacks 'hidden_size'"):
        shape_from_hf_config({"vocab_size": 10})


def test_learner_state_is_16_bytes_per_parameter_and_fsdp_shards_it():
    one = estimate_learner(QWEN_05B, LearnerSetup(cuda=False))
    part = {p.name: p.bytes for p in one.parts}
    assert part["weights"] + part["gradients"] + part["AdamW moments"] == 16 * QWEN_05B.params
    four = {p.name: p.bytes for p in estimate_learner(QWEN_05B, LearnerSetup(cuda=False, world_size=4,
                                                                            sharding="fsdp")).parts}
    assert four["AdamW moments"] == pytest.approx(part["AdamW moments"] / 4, abs=1)
    ddp = {p.name: p.bytes for p in estimate_learner(QWEN_05B, LearnerSetup(cuda=False, world_size=4)).parts}
    assert ddp["AdamW moments"] == part["AdamW moments"] and "DDP all-reduce bucket" in ddp
    bf16 = {p.name: p.bytes for p in estimate_learner(QWEN_05B, LearnerSetup(precision="bf16", cuda=False)).parts}
    assert bf16["AdamW moments"] == part["AdamW moments"] // 2


def test_lora_trains_adapters_only():
    full = estimate_learner(QWEN_05B, LearnerSetup())
    lora = estimate_learner(QWEN_05B, LearnerSetup(lora_rank=16))
    grads = {p.name: p.bytes for p in lora.parts}["gradients"]
    # rank 16 on all 7 Linear layers of 24: 24 x 16 x (2 x (896+896) + 2 x (896+128) + 3 x (896+4864))
    assert grads == 4 * 24 * 16 * (2 * 1792 + 2 * 1024 + 3 * 5760)
    assert lora.total < 0.6 * full.total  # activations stay: backward still runs through every layer


def test_checkpointing_and_chunking_cut_what_they_should():
    base = LearnerSetup(rows=4, row_tokens=3072, completion_tokens=2048)
    act = lambda s: {p.name: p.bytes for p in estimate_learner(QWEN_05B, s).parts}  # noqa: E731
    assert act(replace(base, gradient_checkpointing=True))["activations"] < act(base)["activations"] / 5
    # chunking off: logits of all 12288 positions instead of one 1024-position chunk
    assert act(replace(base, logits_chunk=0))["logits"] == 12 * act(base)["logits"]


def test_sampler_kv_cache_is_the_formula():
    est = estimate_sampler(QWEN_05B, dtype="bfloat16", sequences=256, seq_tokens=3072, gpu_memory_utilization=0.5)
    kv = {p.name: p.bytes for p in est.parts}["KV cache"]
    assert kv == 24 * 2 * 64 * 2 * 2 * 256 * 3072 == 9 * GiB
    assert any(f">= {est.total / 0.5 / GiB:.1f} GiB" in n for n in est.notes)


def test_paper_config_estimate_and_the_cli_table():
    from services.config_cmd import render

    cfg = RunConfig.model_validate({"sampler": {"sampling_batch_prompts": 64, "group_size": 4,
                                                "max_prompt_tokens": 1024, "max_new_tokens": 2048},
                                    "learner": {"micro_batch_size": 4, "micro_batch_tokens": 16384}})
    run = estimate_run(cfg, QWEN_05B, "preset", cuda=True)
    setup_rows = {p.name: p.note for p in run.learner.parts}["activations"]
    assert "12288 tokens" in setup_rows  # 4 rows of 1024 + 2048: the worst micro-batch
    text = render(run)
    assert "KV cache" in text and "vLLM fraction 0.85" in text and "peak" in text


@pytest.mark.process
def test_dashrl_config_estimate_prints_the_table():
    from tests.unit.shared.test_config import dashrl

    res = dashrl("config", str(ROOT / "configs/paper-qwen2.5-0.5b-math.yaml"), "--estimate",
                 "--model-shape", "qwen2.5-1.5b", "--sharding", "fsdp", "--world-size", "2")
    assert res.returncode == 0, res.stderr
    assert "/ 2 ranks (FSDP2)" in res.stdout and "preset qwen2.5-1.5b" in res.stdout
    bad = dashrl("config", str(ROOT / "configs/paper-qwen2.5-0.5b-math.yaml"), "--estimate",
                 "--set", "model.path=models/no-such-model")
    assert bad.returncode == 2 and "no config.json there" in bad.stderr, bad.stderr


def test_shipped_presets_parse_as_json_configs(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
        "tie_word_embeddings": True}))
    assert model_shape(tmp_path)[0] == QWEN_05B  # Qwen2.5-0.5B's config.json fields -> the preset


def test_deploy_doc_sizing_table_is_the_estimators():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sizing_table", ROOT / "scripts/sizing_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = (ROOT / "docs/deploy.md").read_text()
    block = doc[doc.index(mod.BEGIN) + len(mod.BEGIN) : doc.index(mod.END)]
    assert block.strip() == mod.table().strip(), "docs/deploy.md is stale: run scripts/sizing_table.py --write-doc"
    assert "| qwen2.5-7b | 7.62 B | 1 GPU (DDP: a full copy per rank) |" in block and "none (> 141 GB)" in block


def test_model_lora_of_the_config_is_estimated():
    from shared.sizing import learner_setup

    cfg = RunConfig.model_validate({"model": {"lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}}})
    setup = learner_setup(cfg)
    assert (setup.lora_rank, setup.lora_targets) == (8, ("q_proj", "v_proj"))
    assert learner_setup(RunConfig()).lora_rank == 0 and learner_setup(cfg, lora_rank=0).lora_rank == 0
