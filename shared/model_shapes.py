"""A decoder-only LM's shapes, for memory arithmetic without torch (`shared.sizing`).

`ModelShape` holds what the estimate needs (vocabulary, hidden size, layers, attention and KV
heads, head size, MLP width, tied embeddings, q/k/v biases) and counts the parameters of a
Llama/Qwen2-style decoder from them. `model_shape(path)` reads a Hugging Face `config.json` from
a model folder, or takes a named preset (`PRESETS`: the Qwen2.5 0.5B/1.5B/7B and SmolLM2-135M
shapes, from their published config.json files) when the folder is not on this machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The Linear layers of one decoder layer (the usual LoRA targets)."""


@dataclass(frozen=True)
class ModelShape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool
    qkv_bias: bool = False

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_dims(self) -> dict[str, tuple[int, int]]:
        """Each decoder layer's Linear: name -> (in features, out features)."""
        H, q, kv, inter = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return {"q_proj": (H, q), "k_proj": (H, kv), "v_proj": (H, kv), "o_proj": (q, H),
                "gate_proj": (H, inter), "up_proj": (H, inter), "down_proj": (inter, H)}

    @property
    def layer_linear_params(self) -> int:
        """Weights (and q/k/v biases) of one layer's Linear layers."""
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return sum(i * o for i, o in self.linear_dims().values()) + bias

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """All parameters: embeddings, layers (Linear + two RMSNorms), final norm, untied output layer."""
        per_layer = self.layer_linear_params + 2 * self.hidden
        head = 0 if self.tied else self.vocab * self.hidden
        return self.embedding_params + self.layers * per_layer + self.hidden + head

    def lora_params(self, rank: int, targets: tuple[str, ...] = LINEAR_MODULES) -> int:
        """Trainable parameters of rank-`rank` LoRA adapters (A: in x r, B: r x out) on `targets`."""
        dims = self.linear_dims()
        unknown = [t for t in targets if t not in dims]
        if unknown:
            raise ValueError(f"unknown LoRA target(s) {unknown}; known: {', '.join(dims)}")
        return self.layers * sum(rank * (dims[t][0] + dims[t][1]) for t in targets)


PRESETS: dict[str, ModelShape] = {
    # Qwen/Qwen2.5-*/config.json (q/k/v biases, GQA); the 0.5B and 1.5B tie their embeddings
    "qwen2.5-0.5b": ModelShape(151_936, 896, 24, 14, 2, 64, 4864, tied=True, qkv_bias=True),
    "qwen2.5-1.5b": ModelShape(151_936, 1536, 28, 12, 2, 128, 8960, tied=True, qkv_bias=True),
    "qwen2.5-7b": ModelShape(152_064, 3584, 28, 28, 4, 128, 18944, tied=False, qkv_bias=True),
    # HuggingFaceTB/SmolLM2-135M(-Instruct)/config.json (Llama, tied, no biases)
    "smollm2-135m": ModelShape(49_152, 576, 30, 9, 3, 64, 1536, tied=True),
}


def shape_from_hf_config(cfg: dict) -> ModelShape:
    """A ModelShape from a Hugging Face config.json's fields (Llama, Qwen2, Mistral, ... names)."""
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        return ModelShape(
            vocab=int(cfg["vocab_size"]), hidden=hidden, layers=int(cfg["num_hidden_layers"]), heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            intermediate=int(cfg["intermediate_size"]), tied=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")))
    except KeyError as err:
        raise ValueError(f"config.json lacks {err.args[0]!r}: not a decoder-only LM config the estimate knows") from None


def model_shape(path_or_preset: str | Path) -> tuple[ModelShape, str]:
    """(shape, where it came from): `<folder>/config.json` when it exists, else the preset whose
    name the path ends with (case-insensitive, e.g. models/Qwen2.5-0.5B -> qwen2.5-0.5b)."""
    folder = Path(path_or_preset)
    if (folder / "config.json").is_file():
        return shape_from_hf_config(json.loads((folder / "config.json").read_text())), str(folder / "config.json")
    name = folder.name.lower().removesuffix("-instruct")
    if name in PRESETS:
        return PRESETS[name], f"preset {name}"
    raise ValueError(f"{path_or_preset}: no config.json there and no preset of that name "
                     f"(presets: {', '.join(PRESETS)}); pass a model folder or a preset name")
