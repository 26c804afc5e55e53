"""Typed configuration of a run's named evals (`task.evals`).

Each eval has a unique name (a Prometheus label value and a key of eval.jsonl), a source of
problems and what to compute on them: greedy accuracy and/or pass@k over `samples` completions
drawn at the sampling temperature. Sources: the training task's held-out split (`held_out`,
disjoint from training by question text), a {prompt, answer} file (`file`: JSONL or Parquet,
e.g. MATH-500 or GSM8K test), or a reasoning-gym dataset (`reasoning_gym`). A config without
`task.evals` gets one eval, `held_out`, as runs had before named evals existed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.config_base import Strict, tagged_union
from shared.rows_config import RowFields

EVAL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_EVAL = "held_out"


class HeldOutEval(Strict):
    kind: Literal["held_out"] = "held_out"
    """The training task's held-out problems: split off its source with `task.split_seed`, or
    read from `task.source.eval_path`. Training problems with the same question are dropped."""


class FileEval(RowFields):
    kind: Literal["file"] = "file"
    """{prompt, answer} rows of a JSONL or Parquet file or a Hugging Face `datasets` folder, e.g.
    MATH-500 or GSM8K test."""
    path: str
    """The file (.jsonl or .parquet) or dataset folder (its `split`)."""


class ReasoningGymEval(Strict):
    kind: Literal["reasoning_gym"] = "reasoning_gym"
    """A reasoning-gym dataset, generated offline and scored by its own verifier."""
    name: str
    """reasoning-gym dataset name, e.g. gsm_symbolic, basic_arithmetic."""
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    """Keyword arguments for the dataset generator (difficulty knobs)."""
    seed: int | None = None
    """Generator seed; None: one derived from the run's data seed and the eval's name (so not
    the training set's seed). Training problems with an eval question are dropped either way."""


EvalSource = tagged_union(HeldOutEval, FileEval, ReasoningGymEval, default="held_out")


class EvalConfig(Strict):
    name: str = Field(pattern=EVAL_NAME)
    """Unique name: the `eval` label in Prometheus, `name` in eval.jsonl, the dashboard legend."""
    source: EvalSource = Field(default_factory=HeldOutEval)
    """Where the problems come from (tagged by `kind`; default: the held-out split)."""
    size: int | None = Field(default=None, ge=1)
    """Problems scored. held_out: the split's size (None: `task.eval_size`); file: the first
    `size` rows (None: all); reasoning_gym: required."""
    greedy: bool = True
    """Score one greedy (temperature 0) completion per problem: `greedy_accuracy`."""
    samples: int = Field(default=1, ge=1)
    """n: completions drawn per problem at the sampling temperature for pass@k."""
    pass_at_k: list[int] = Field(default_factory=lambda: [1])
    """k values reported as unbiased pass@k over the n samples, 1 - C(n-c,k)/C(n,k); each
    1 <= k <= `samples`. []: draw no samples."""
    reward: str | None = None
    """`module:function` verifier for this eval (under `task.reward_allowlist`); None: the
    source's own (held_out: the training task's, `task.reward` included; file: math-verify;
    reasoning_gym: the dataset's scorer)."""
    system_prompt: str | None = None
    """System prompt for this eval's problems; None: the training task's (the format the policy
    is trained to answer in)."""

    @model_validator(mode="after")
    def _computes_something(self) -> "EvalConfig":
        if not self.greedy and not self.pass_at_k:
            raise ValueError(f"pass_at_k: empty and greedy is off: eval {self.name!r} computes nothing")
        bad = [k for k in self.pass_at_k if not 1 <= k <= self.samples]
        if bad:
            raise ValueError(f"pass_at_k: {bad} not within 1..samples ({self.samples}) in eval {self.name!r}")
        if len(set(self.pass_at_k)) != len(self.pass_at_k):
            raise ValueError(f"pass_at_k: {self.pass_at_k} repeats a k in eval {self.name!r}")
        if self.source.kind == "reasoning_gym" and self.size is None:
            raise ValueError(f"size: required for a reasoning_gym eval ({self.name!r})")
        return self


def check_evals(evals: list[EvalConfig], eval_size: int) -> None:
    """Cross-eval rules: names unique, at most one held-out split, and that split has a size."""
    names = [e.name for e in evals]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"evals: names must be unique, {dup} repeated")
    held = [e.name for e in evals if e.source.kind == "held_out"]
    if len(held) > 1:
        raise ValueError(f"evals: {held} all use the held-out split; a run has one (give it one eval)")
    if any(e.source.kind == "held_out" and e.size is None for e in evals) and eval_size == 0:
        raise ValueError(f"evals: held-out eval {held[0]!r} has no size and task.eval_size is 0 (set either)")


def effective_evals(evals: list[EvalConfig] | None, eval_size: int) -> list[EvalConfig]:
    """The run's evals with every size resolved: `evals` (a held_out eval without a size gets
    `eval_size`), or without `evals` the one default eval of `eval_size` held-out problems."""
    if evals is None:
        return [EvalConfig(name=DEFAULT_EVAL, size=eval_size)] if eval_size > 0 else []
    out = []
    for e in evals:
        if e.source.kind == "held_out" and e.size is None:
            e = e.model_copy(update={"size": eval_size})
        out.append(e)
    return out
