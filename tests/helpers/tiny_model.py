"""A tiny Llama causal LM and a character-level tokenizer, built offline in well under a second.

`build_tiny_model(folder)` writes a Hugging Face folder (config.json, model.safetensors,
generation_config.json, tokenizer files) that transformers and vLLM (CPU attention needs
head_dim >= 32) can both load. Defaults: hidden 64, 2 layers, 2 heads of 32, untied embeddings,
a vocabulary of 4 special tokens + printable ASCII (~100 ids), no chat template; `add_bos=True`
makes the tokenizer prefix every encoding with <s>, as Llama-style tokenizers do.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = [c for c in string.printable if c not in "\x0b\x0c\r"]


def build_tokenizer(add_bos: bool = False):
    """A char-level PreTrainedTokenizerFast: one token per character, decode joins them back;
    with `add_bos`, encoding with special tokens prefixes <s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        model_max_length=512,
    )


def build_tiny_model(folder: str | Path, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 2, head_dim: int = 32, tie_word_embeddings: bool = False,
                     add_bos: bool = False) -> Path:
    """Write a randomly initialised tiny Llama + tokenizer to `folder`; returns the folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tokenizer(add_bos)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        head_dim=head_dim, max_position_embeddings=512, tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=1.0,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
