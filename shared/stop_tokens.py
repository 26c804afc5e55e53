"""Where a completion ends: the one set of stop token ids both generation backends use.

Two sources, because a model and a prompt format can disagree:
- the model's end of sequence: every id in its generation config's `eos_token_id` (an int or a
  list; config.json's when the folder has no generation config), plus the tokenizer's eos;
- the prompt format's end of turn, when prompts go through the chat template: the special token
  the template writes right after an assistant message (`<|im_end|>` for Qwen and SmolLM2,
  `<|eot_id|>` for Llama 3). A base model prompted through a chat template (Qwen2.5 base lists
  only `<|endoftext|>`) otherwise runs on past the end of its turn to the length limit.

The turn-end token is found from the template itself, not from a list of known names: a
conversation with a marker assistant message is rendered and the first token after the marker
is taken, if it is a special (added) token; a plain-text continuation such as a newline is
never made a stop token. Pure Python over a tokenizer object (no torch, no vLLM).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.protocol import FinishReason

_MARKER = "dashrl stop probe 7"


@dataclass(frozen=True)
class StopTokens:
    """The stop ids of one model + prompt format; `ids` is what the backends stop on."""

    eos: tuple[int, ...] = ()
    """The model's end-of-sequence ids (generation config and tokenizer)."""
    turn_end: tuple[int, ...] = ()
    """The chat template's end-of-turn ids that are not already in `eos`."""

    @property
    def ids(self) -> tuple[int, ...]:
        return self.eos + self.turn_end

    def reason(self, last_token: int) -> FinishReason:
        """Why a completion that ended on a stop token ended: the turn end, or the model's eos."""
        return FinishReason.TURN_END if last_token in self.turn_end else FinishReason.STOP


def generation_eos_ids(model_path: str | Path) -> list[int]:
    """Every `eos_token_id` of the folder's generation_config.json (else its config.json)."""
    for name in ("generation_config.json", "config.json"):
        file = Path(model_path) / name
        if file.exists():
            eos = json.loads(file.read_text()).get("eos_token_id")
            if eos is not None:
                return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    return []


def turn_end_id(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant message, if any."""
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that refuses this conversation has no turn end to find
        return None
    at = text.rfind(_MARKER)
    if at < 0:
        return None
    after = tokenizer(text[at + len(_MARKER):], add_special_tokens=False)["input_ids"]
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return int(after[0]) if after and after[0] in special else None


def stop_tokens(tokenizer: Any, *, chat_template: bool, model_path: str | Path | None = None) -> StopTokens:
    """The stop ids for prompts rendered through the chat template (`chat_template=True`) or as
    plain text, for the model at `model_path` (its generation config) and its tokenizer."""
    eos = list(generation_eos_ids(model_path)) if model_path is not None else []
    if tokenizer.eos_token_id is not None:
        eos.append(int(tokenizer.eos_token_id))
    eos_ids = tuple(dict.fromkeys(eos))  # ordered, no repeats
    turn = turn_end_id(tokenizer) if chat_template else None
    return StopTokens(eos_ids, (turn,) if turn is not None and turn not in eos_ids else ())
