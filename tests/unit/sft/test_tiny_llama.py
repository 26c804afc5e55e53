"""The demo policy's tokenizer and model shape: digits one per token, answer tags that survive
the sampler's decode, a config vLLM's CPU backend can serve and reload."""

import pytest

from services.sft.tiny_llama import (
    CHAT_TEMPLATE, TinyLlamaShape, llama_config, new_model, train_tokenizer,
)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([f"Calculate {a} + {b}. {a + b}" for a in range(30) for b in range(30)])


def test_numbers_are_spelled_digit_by_digit(tok):
    ids = tok("Calculate 1234 + 56.", add_special_tokens=False).input_ids
    digits = [t for t in tok.convert_ids_to_tokens(ids) if t.strip("Ġ").isdigit()]
    assert digits == ["1", "2", "3", "4", "5", "6"]


def test_answer_tags_are_whole_tokens_kept_by_skip_special_decode(tok):
    ids = tok("<answer>-42</answer><|end|>", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids)[0] == "<answer>" and len(ids) == 6
    # The sampler decodes with skip_special_tokens=True and reads the tags from the text.
    assert tok.decode(ids, skip_special_tokens=True) == "<answer>-42</answer>"


def test_chat_template_with_system_and_generation_prompt(tok):
    assert tok.chat_template == CHAT_TEMPLATE
    text = tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
                                   add_generation_prompt=True, tokenize=False)
    assert text == "<|system|>S<|user|>Q<|assistant|>"
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"


def test_config_is_untied_with_a_vllm_cpu_head_size(tok):
    cfg = llama_config(tok, TinyLlamaShape(hidden=128, heads=4))
    assert cfg.tie_word_embeddings is False and cfg.head_dim == 32
    assert cfg.vocab_size % 64 == 0 and cfg.vocab_size >= len(tok)
    assert cfg.eos_token_id == tok.eos_token_id
    with pytest.raises(ValueError, match="head size"):
        llama_config(tok, TinyLlamaShape(hidden=128, heads=8))  # head size 16


def test_new_model_has_separate_output_weights(tok):
    model = new_model(tok, TinyLlamaShape(hidden=64, layers=1, heads=2, intermediate=128))
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert model.generation_config.eos_token_id == tok.eos_token_id
