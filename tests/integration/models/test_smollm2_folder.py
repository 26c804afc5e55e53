"""The converted SmolLM2-135M-Instruct folder is a plain HF model with the right tokenizer.

Loaded with plain transformers (no `gguf_file`): Llama, 134.5M parameters, tied embeddings,
head_dim 64 (a vLLM-CPU attention size), no GGUF quantization entry; the tokenizer's eos is the
ChatML turn end `<|im_end|>` (id 2), which the generation config names too; the chat template is
ChatML with SmolLM2's default system turn; a greedy answer to a chat prompt ends on `<|im_end|>`.
A second build reuses the cached folder.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers.smollm2 import chat_prompts, data_dir, smollm2_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder():
    return smollm2_folder()


def test_folder_is_a_plain_tied_llama(folder):
    from services.sampler.backends.base import tensor_shapes

    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert config["tie_word_embeddings"] is True and config["head_dim"] == 64
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (576, 30, 49152)
    shapes = tensor_shapes(folder)
    assert "lm_head.weight" not in shapes  # tied: the output layer is the embedding
    assert sum(math.prod(s) for s in shapes.values()) == 134_515_008
    marker = json.loads((folder / "dashrl-gguf.json").read_text())
    assert marker["check_max_abs_diff"] <= 1e-4 and marker["tied_embeddings"] is True


def test_tokenizer_chat_template_and_stop_tokens(folder):
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(folder)
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id) == ("<|im_end|>", 2, 2)
    assert GenerationConfig.from_pretrained(folder).eos_token_id in (2, [2])
    assert tok("<|im_start|>user<|im_end|>", add_special_tokens=False).input_ids[0::2] == [1, 2]
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok("12+7", add_special_tokens=False).input_ids == [33, 34, 27, 39]  # digits one token each


def test_stop_ids_turn_end_is_the_eos(folder):
    from transformers import AutoTokenizer

    from shared.stop_tokens import StopTokens, stop_tokens

    tok = AutoTokenizer.from_pretrained(folder)
    # ChatML's turn end <|im_end|> is SmolLM2's eos: one stop id, finish reason `stop`.
    assert stop_tokens(tok, chat_template=True, model_path=folder) == StopTokens(eos=(2,), turn_end=())


def test_greedy_chat_answer_ends_on_the_turn_end_token(folder):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = chat_prompts(tok, ["Name the capital of France."])[0]
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)[0, len(prompt):].tolist()
    assert out[-1] == 2, tok.decode(out)
    assert "Paris" in tok.decode(out)


def test_second_build_reuses_the_cache(folder):
    from services.models.smollm2 import build_smollm2

    before = (folder / "model.safetensors").stat().st_mtime_ns
    said: list[str] = []
    assert build_smollm2(data_dir(), log=said.append) == folder
    assert said == [f"smollm2: reusing {folder}"]
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
