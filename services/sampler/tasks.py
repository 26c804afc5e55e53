"""Prompt sources: which problems exist, in what order this sampler sees them, and how a
problem becomes prompt token ids.

A task is a prompt source plus a verifier (the verifier lives in `rewards.py`). Sources:
reasoning-gym procedural datasets (generated offline from the run seed) and {prompt, answer}
rows from JSONL or Parquet files. Held-out problems are disjoint from training by question text:
a training row whose question is also a held-out question is dropped (counted and logged), so
held-out accuracy is measured on questions RL never trained on. The order is a seeded
permutation per epoch; with several samplers, sampler k takes every num_shards-th problem of
that permutation starting at k, so shards are disjoint and together cover every problem once
per epoch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.config import JsonlTask, ReasoningGymTask, TaskConfig
from shared.configio import ConfigError

log = logging.getLogger(__name__)

JSONL_SYSTEM_PROMPT = "Solve the problem step by step. Put the final answer in \\boxed{}."


@dataclass(frozen=True)
class Problem:
    index: int
    """Position in its split (stable for a given config and seed)."""
    question: str
    answer: str
    entry: dict[str, Any] = field(default_factory=dict, compare=False)
    """Source-specific data the verifier needs (the reasoning-gym entry); sent to the scorer."""


@dataclass
class TaskSet:
    train: list[Problem]
    eval: list[Problem]
    system_prompt: str
    """The system prompt to use ('' for none): the config's, else the source's default."""


def load_task(cfg: TaskConfig, seed: int) -> TaskSet:
    src = cfg.source
    if isinstance(src, ReasoningGymTask):
        train, held_out, default_prompt = _reasoning_gym(src, cfg.eval_size, seed)
    else:
        train, held_out = _file_task(src, cfg.eval_size, seed)
        default_prompt = JSONL_SYSTEM_PROMPT
    train, dropped = drop_held_out_questions(train, held_out)
    if dropped:
        log.info("task: dropped %d of %d training problems whose question is also held out", dropped,
                 dropped + len(train))
    if not train:
        raise ConfigError(f"task.eval_size: no training problems left after the eval split ({dropped} dropped "
                          f"because their question is also one of the {len(held_out)} held-out questions)")
    system = default_prompt if cfg.system_prompt is None else cfg.system_prompt
    return TaskSet(train, held_out, system)


def drop_held_out_questions(train: list[Problem], held_out: list[Problem]) -> tuple[list[Problem], int]:
    """Training problems whose question text is not a held-out question (re-indexed from 0), and
    how many were dropped."""
    seen = {p.question for p in held_out}
    kept = [p for p in train if p.question not in seen]
    return [Problem(i, p.question, p.answer, p.entry) for i, p in enumerate(kept)], len(train) - len(kept)


def _reasoning_gym(src: ReasoningGymTask, eval_size: int, seed: int) -> tuple[list[Problem], list[Problem], str]:
    import reasoning_gym
    from reasoning_gym.utils import SYSTEM_PROMPTS

    # One dataset, split by index: the eval problems are the last `eval_size` of it.
    ds = reasoning_gym.create_dataset(src.name, size=src.size + eval_size, seed=seed, **src.params)
    rows = [ds[i] for i in range(src.size + eval_size)]
    probs = [Problem(i, r["question"], str(r["answer"]), dict(r)) for i, r in enumerate(rows)]
    held_out = [Problem(i, p.question, p.answer, p.entry) for i, p in enumerate(probs[src.size :])]
    return probs[: src.size], held_out, SYSTEM_PROMPTS["default"]


def read_rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a .jsonl or .parquet file as (where, row): `where` is `file:line` (JSONL) or
    `file:row N` (Parquet, from 1), so an error names the row. Raises ConfigError."""
    p = Path(path)
    try:
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq

            return [(f"{p}:row {i}", row) for i, row in enumerate(pq.read_table(p).to_pylist(), 1)]
        lines = p.read_text().splitlines()
    except Exception as err:  # missing file, not Parquet, unreadable, not UTF-8: all name the file
        raise ConfigError(f"{p}: cannot read dataset: {type(err).__name__}: {err}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append((f"{p}:{n}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise ConfigError(f"{p}:{n}: not JSON: {err.msg}") from None
    return rows


def _to_problems(rows: list[tuple[str, dict[str, Any]]], src: JsonlTask) -> list[Problem]:
    out = []
    for i, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected an object with {src.prompt_field!r} and {src.answer_field!r}, "
                              f"got {type(row).__name__}")
        for key in (src.prompt_field, src.answer_field):
            if key not in row:
                field = "prompt_field" if key == src.prompt_field else "answer_field"
                raise ConfigError(f"{where}: row lacks {key!r} (task.source.{field})")
            if row[key] is None or (isinstance(row[key], str) and not row[key].strip()):
                raise ConfigError(f"{where}: {key!r} is empty")
        out.append(Problem(i, str(row[src.prompt_field]), str(row[src.answer_field])))
    return out


def _file_task(src: JsonlTask, eval_size: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    rows = _to_problems(read_rows(src.path), src)
    if src.eval_path:
        return rows, _to_problems(read_rows(src.eval_path), src)[:eval_size]
    # No eval file: a seeded split of the training file (the same for every sampler of the run).
    perm = np.random.default_rng([seed, 7]).permutation(len(rows))
    held = sorted(perm[:eval_size].tolist())
    held_set = set(held)
    train = [p for p in rows if p.index not in held_set]
    reindex = lambda ps: [Problem(i, p.question, p.answer, p.entry) for i, p in enumerate(ps)]  # noqa: E731
    return reindex(train), reindex([rows[i] for i in held])


class PromptOrder:
    """Seeded, endless order over `n` problems for one shard: `take(k)` returns the next k indices."""

    def __init__(self, n: int, seed: int, num_shards: int = 1, shard_index: int = 0) -> None:
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} out of range for {num_shards} shards")
        if n < num_shards:
            raise ValueError(f"{n} problems cannot fill {num_shards} shards")
        self.n, self.seed, self.num_shards, self.shard_index = n, seed, num_shards, shard_index
        self.epoch, self.offset = 0, 0
        self._current = self.shard(0)

    def shard(self, epoch: int) -> np.ndarray:
        """This shard's problem indices for `epoch` (every shard uses the same permutation)."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return perm[self.shard_index :: self.num_shards]

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.offset == len(self._current):
                self.epoch, self.offset = self.epoch + 1, 0
                self._current = self.shard(self.epoch)
            step = min(k - len(out), len(self._current) - self.offset)
            out.extend(self._current[self.offset : self.offset + step].tolist())
            self.offset += step
        return out


class PromptRenderer:
    """Problem -> prompt token ids, through the tokenizer's chat template when it has one."""

    def __init__(self, tokenizer: Any, system_prompt: str = "") -> None:
        self.tokenizer, self.system_prompt = tokenizer, system_prompt
        self._cache: dict[tuple[str, int], list[int]] = {}

    @property
    def uses_chat_template(self) -> bool:
        """Whether prompts go through the tokenizer's chat template (then its turn end stops too)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def text(self, question: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            messages.append({"role": "user", "content": question})
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{self.system_prompt}\n\n{question}\n" if self.system_prompt else f"{question}\n"

    def ids(self, problem: Problem, split: str = "train") -> list[int]:
        key = (split, problem.index)
        if key not in self._cache:
            text = self.text(problem.question)
            # A chat template writes its own special tokens (BOS included); plain text gets them added.
            special = not getattr(self.tokenizer, "chat_template", None)
            self._cache[key] = list(self.tokenizer(text, add_special_tokens=special)["input_ids"])
        return self._cache[key]
