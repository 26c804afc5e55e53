"""A small Llama-architecture policy made offline: a BPE tokenizer trained on task text and a
freshly initialised `LlamaForCausalLM` sized for CPU.

Owns the tokenizer recipe (digits split one per token, so arithmetic is learnable; a chat
template so the sampler's "apply the chat template when there is one" path formats prompts
exactly as SFT did) and the model config (untied embeddings and head size >= 32: vLLM's CPU
attention needs head sizes from its list, and with tied embeddings its in-place weight reload
left the output layer stale when this was written; tied models reload correctly now,
docs/sampler.md "Tied embeddings").

Prompt format, shared with the sampler and SFT:
    apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    == "<|user|>" + question + "<|assistant|>"; the completion is "<answer>N</answer><|end|>"
(the run config sets `task.system_prompt: ""`; a system message, if any, is rendered first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

USER, ASSISTANT, SYSTEM, END, PAD = "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, END, USER, ASSISTANT, SYSTEM]
# The sampler's reasoning-gym verifier reads the last <answer>...</answer> of a completion and
# decodes with skip_special_tokens=True, so the tags are whole tokens but NOT special ones.
ANSWER_TAGS = ["<answer>", "</answer>"]

# Jinja, rendered by transformers and vLLM alike. A system message (task.system_prompt) comes first.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}" + SYSTEM + "{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% else %}" + ASSISTANT + "{{ message['content'] }}" + END + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


@dataclass(frozen=True)
class TinyLlamaShape:
    """Model size knobs. head_dim = hidden / heads must be one of vLLM CPU's sizes (32, 64, ...)."""

    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 768
    max_positions: int = 256

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 384):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `texts`, digits always single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits first: "98" -> "9", "8", so every number is spelled digit by digit.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ANSWER_TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=END, pad_token=PAD, padding_side="left",
        model_max_length=1024,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def llama_config(tokenizer, shape: TinyLlamaShape):
    """A `LlamaConfig` for `tokenizer`'s vocabulary: untied embeddings, vLLM-CPU head size."""
    from transformers import LlamaConfig

    if shape.hidden % shape.heads or shape.head_dim not in VLLM_CPU_HEAD_SIZES:
        raise ValueError(f"head size {shape.hidden}/{shape.heads} is not one vLLM's CPU backend serves "
                         f"({VLLM_CPU_HEAD_SIZES})")
    # vocab padded to a multiple of 64: friendlier matmuls, room for the special tokens.
    vocab = -(-len(tokenizer) // 64) * 64
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )


def new_model(tokenizer, shape: TinyLlamaShape, seed: int = 0):
    """A freshly initialised `LlamaForCausalLM` (float32, CPU)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, shape))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model
