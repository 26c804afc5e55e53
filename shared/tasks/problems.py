"""Which problems a task has, and which of them are held out.

A task is a prompt source plus a verifier (the sampler runs the verifier). Sources: reasoning-gym
procedural datasets (generated offline from the run's data seed) and {prompt, answer} rows from
JSONL or Parquet files. `load_task` is the one train/held-out split every consumer uses (the
sampler, `dashrl sft --config`, the demo policy, the TRL baseline): held-out problems are disjoint
from training by question text — a training row whose question is also a held-out question is
dropped (counted and logged) — so held-out accuracy is measured on questions nothing trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.config import JsonlTask, ReasoningGymTask, TaskConfig
from shared.configio import ConfigError
from shared.rows_config import RowFields
from shared.tasks.rows import read_rows, reference_answer

log = logging.getLogger(__name__)

JSONL_SYSTEM_PROMPT = "Solve the problem step by step. Put the final answer in \\boxed{}."
SOLVED = 1.0 - 1e-6
"""A problem counts as solved when its verifier gives the full reward (1.0)."""


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
    """The task's training and held-out problems for data seed `seed` (the run's `data_seed`)."""
    src = cfg.source
    if isinstance(src, ReasoningGymTask):
        train, held_out, default_prompt = _reasoning_gym(src, cfg.held_out_size, seed)
    else:
        train, held_out = _file_task(src, cfg.held_out_size, seed)
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


def reference_completion(problem: Problem, source: ReasoningGymTask | JsonlTask) -> str:
    """A right completion in the form the task's verifier reads, the target `dashrl sft` trains
    on: reasoning-gym answers inside <answer> tags (its scorer reads the last pair), file rows'
    answer text as written."""
    return f"<answer>{problem.answer}</answer>" if isinstance(source, ReasoningGymTask) else problem.answer


def drop_held_out_questions(train: list[Problem], held_out: list[Problem]) -> tuple[list[Problem], int]:
    """Training problems whose question text is not a held-out question (re-indexed from 0), and
    how many were dropped."""
    seen = {p.question for p in held_out}
    kept = [p for p in train if p.question not in seen]
    return _reindex(kept), len(train) - len(kept)


def _reindex(problems: list[Problem]) -> list[Problem]:
    return [Problem(i, p.question, p.answer, p.entry) for i, p in enumerate(problems)]


def _reasoning_gym(src: ReasoningGymTask, eval_size: int, seed: int) -> tuple[list[Problem], list[Problem], str]:
    import reasoning_gym
    from reasoning_gym.utils import SYSTEM_PROMPTS

    # One dataset, split by index: the eval problems are the last `eval_size` of it.
    ds = reasoning_gym.create_dataset(src.name, size=src.size + eval_size, seed=seed, **src.params)
    rows = [ds[i] for i in range(src.size + eval_size)]
    probs = [Problem(i, r["question"], str(r["answer"]), dict(r)) for i, r in enumerate(rows)]
    return probs[: src.size], _reindex(probs[src.size :]), SYSTEM_PROMPTS["default"]


def file_problems(src: RowFields, path: str | None = None, split: str | None = None,
                  what: str = "task.source") -> list[Problem]:
    """The problems of a row source (`src.path` and `src.split` unless given): its prompt and
    answer fields, the answer reduced by `src.answer_from`. `what` names the config section in
    errors. Raises ConfigError naming the file (or folder and split), the row and the key."""
    rows = read_rows(path or src.path, src.split if path is None else split)
    out = []
    for i, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected an object with {src.prompt_field!r} and {src.answer_field!r}, "
                              f"got {type(row).__name__}")
        for key in (src.prompt_field, src.answer_field):
            if key not in row:
                name = "prompt_field" if key == src.prompt_field else "answer_field"
                raise ConfigError(f"{where}: row lacks {key!r} ({what}.{name})")
            if row[key] is None or (isinstance(row[key], str) and not row[key].strip()):
                raise ConfigError(f"{where}: {key!r} is empty")
        answer = reference_answer(row[src.answer_field], src.answer_from, where, src.answer_field)
        out.append(Problem(i, str(row[src.prompt_field]), answer))
    return out


def _file_task(src: JsonlTask, eval_size: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    rows = file_problems(src)
    if src.eval_path or src.eval_split:
        held = file_problems(src, src.eval_path or src.path, src.eval_split)
        return rows, held[:eval_size]
    # No eval file: a seeded split of the training file (the same for every sampler of the run).
    perm = np.random.default_rng([seed, 7]).permutation(len(rows))
    held = sorted(perm[:eval_size].tolist())
    held_set = set(held)
    return _reindex([p for p in rows if p.index not in held_set]), _reindex([rows[i] for i in held])
