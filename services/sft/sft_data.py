"""SFT data: JSONL rows -> token ids with a loss mask, and padded micro-batches.

Owns the row format and the loss mask. A row is `{"prompt": str, "completion": str}` or
`{"prompt": str, "answer": str}` (the answer is the whole completion). The prompt's token ids and
the completion's (its own tokens, then EOS, so the model learns to stop) come from
`shared.tasks.PromptRenderer`, the rule the sampler renders prompts by, so the fine-tuned model is
trained on exactly the prompts a run will feed it. Loss falls on completion tokens only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.tasks import PromptRenderer

IGNORE = -100  # label value that cross-entropy skips (prompt and padding positions)


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


def encode_row(renderer: PromptRenderer, row: dict[str, str], max_len: int = 1024) -> SftExample:
    """Tokenize one row; the completion is truncated (keeping the prompt) to fit `max_len`."""
    prompt_ids = renderer.prompt_ids(row["prompt"])
    room = max_len - len(prompt_ids)
    if room <= 0:
        raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room under max_len={max_len}")
    completion_ids = renderer.completion_ids(row["completion"])[:room]
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
