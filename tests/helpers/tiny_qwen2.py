"""A tiny random Qwen2 causal LM with a Qwen-style chat template, built offline in about a second.

What the tiny Llama (tests/helpers/tiny_model.py) cannot show and real Qwen2.5 models have:
tied input/output embeddings, q/k/v projection biases, grouped-query attention, and a chat
template whose turn-end token (`<|im_end|>`) is not the generation config's eos
(`<|endoftext|>`), as in the Qwen2.5 base models. Defaults: hidden 64, 2 layers, 2 query heads
of 32 (vLLM CPU attention needs head_dim in {32, 64, 80, ...}), 1 key/value head, a
character-level vocabulary of 3 special tokens + printable ASCII (~100 ids).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_model import CHARS

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIALS = [ENDOFTEXT, IM_START, IM_END]

# The Qwen2.5 template, without tools: a default system turn, then <|im_start|>role\n...<|im_end|>\n.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_qwen2_tokenizer():
    """A char-level PreTrainedTokenizerFast with Qwen's special tokens and chat template; like
    Qwen2's, it adds no BOS/EOS when encoding and pads with <|endoftext|>."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=ENDOFTEXT))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=ENDOFTEXT, pad_token=ENDOFTEXT, model_max_length=512,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen2(folder: str | Path, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 2, num_kv_heads: int = 1, intermediate_size: int | None = None,
                     vocab_size: int | None = None) -> Path:
    """Write a randomly initialised tied Qwen2 + tokenizer to `folder`; returns the folder.

    `vocab_size` larger than the tokenizer's pads the embedding (as real Qwen2.5 checkpoints do)
    and lets a test give the model a real model's embedding shape (e.g. 151936 x 896)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    tokenizer = build_qwen2_tokenizer()
    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    config = Qwen2Config(
        vocab_size=max(vocab_size or 0, len(tokenizer)), hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    # Random init leaves the q/k/v biases at zero; give them values so a lost bias would show.
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.02)
    # Only <|endoftext|>, as in Qwen2.5 base models: <|im_end|> ends a chat turn but is not listed.
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                                               do_sample=True, temperature=1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
