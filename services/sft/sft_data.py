"""SFT data: JSONL rows -> token ids with a loss mask, and padded micro-batches.

Owns the row format and how a row becomes tokens. A row is `{"prompt": str, "completion": str}`
or `{"prompt": str, "answer": str}` (the answer is the whole completion). When the tokenizer
has a chat template the prompt is rendered as one user turn with the generation prompt
appended (what the sampler does); otherwise the raw prompt text is used. The completion is
followed by the EOS token, so the model learns to stop. Loss falls on completion tokens only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IGNORE = -100  # label value that cross-entropy skips (prompt and padding positions)

PromptFormat = Literal["auto", "chat", "raw"]


@dataclass(frozen=True)
class SftExample:
    input_ids: list[int]  # prompt + completion + eos
    labels: list[int]  # IGNORE on the prompt, token ids on completion + eos


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Read a JSONL file of prompt/completion (or prompt/answer) rows; errors name the line."""
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON: {err.msg}") from None
            rows.append(normalize_row(row, f"{path}:{n}"))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def normalize_row(row: object, where: str = "row") -> dict[str, str]:
    """-> {"prompt", "completion"}; accepts `answer` in place of `completion`."""
    if not isinstance(row, dict) or "prompt" not in row:
        raise ValueError(f"{where}: expected an object with 'prompt' and 'completion' or 'answer'")
    completion = row.get("completion", row.get("answer"))
    if completion is None:
        raise ValueError(f"{where}: missing 'completion' (or 'answer')")
    return {"prompt": str(row["prompt"]), "completion": str(completion)}


def write_rows(path: str | Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def render_prompt(tokenizer, prompt: str, fmt: PromptFormat = "auto") -> str:
    """The prompt text exactly as the sampler will feed it to the model."""
    use_chat = fmt == "chat" or (fmt == "auto" and getattr(tokenizer, "chat_template", None))
    if use_chat:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt


def encode_row(tokenizer, row: dict[str, str], fmt: PromptFormat = "auto", max_len: int = 1024) -> SftExample:
    """Tokenize one row; the completion is truncated (keeping the prompt) to fit `max_len`."""
    prompt_ids = tokenizer(render_prompt(tokenizer, row["prompt"], fmt), add_special_tokens=False).input_ids
    completion_ids = tokenizer(row["completion"], add_special_tokens=False).input_ids
    if tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    room = max_len - len(prompt_ids)
    if room <= 0:
        raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room under max_len={max_len}")
    completion_ids = completion_ids[:room]
    return SftExample(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids)


def collate(examples: list[SftExample], pad_id: int):
    """Right-padded tensors: input_ids (B, T), attention_mask (B, T), labels (B, T)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return ids, mask, labels
