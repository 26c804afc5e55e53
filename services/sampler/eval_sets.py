"""The problems of each named eval (`task.evals`), the verifier and system prompt each is scored
with, and keeping every eval's questions out of training.

The `held_out` eval takes the training task's own held-out split (`load_task` made it disjoint
from training). File and reasoning-gym evals come from elsewhere, so a training problem whose
question is also one of theirs is dropped here, the same rule the held-out split follows: every
eval measures questions RL never trained on.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, replace

from services.sampler.rewards import RewardSpec, reward_spec
from shared.tasks import Problem, TaskSet, drop_held_out_questions, file_problems
from shared.config import TaskConfig
from shared.configio import ConfigError
from shared.eval_config import EvalConfig, FileEval, HeldOutEval, ReasoningGymEval

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    spec: EvalConfig
    """The eval's config, sizes resolved (`TaskConfig.eval_specs`)."""
    problems: list[Problem]
    reward: RewardSpec
    system_prompt: str
    """'' for none."""


def load_eval_sets(cfg: TaskConfig, task: TaskSet, seed: int) -> list[EvalSet]:
    """Every eval of the run, in config order (the first is the headline). Raises ConfigError."""
    out = []
    for spec in cfg.eval_specs:
        system = task.system_prompt if spec.system_prompt is None else spec.system_prompt
        out.append(EvalSet(spec, _problems(spec, task, seed), _reward(spec, cfg), system))
    return out


def exclude_eval_questions(task: TaskSet, sets: list[EvalSet]) -> TaskSet:
    """`task` without the training problems whose question a file or reasoning-gym eval holds."""
    outside = [p for s in sets if not isinstance(s.spec.source, HeldOutEval) for p in s.problems]
    if not outside:
        return task
    train, dropped = drop_held_out_questions(task.train, outside)
    if dropped:
        log.info("task: dropped %d of %d training problems whose question is also an eval's", dropped,
                 dropped + len(train))
    if not train:
        raise ConfigError(f"task.evals: no training problems left ({dropped} share a question with an eval)")
    return replace(task, train=train)


def _problems(spec: EvalConfig, task: TaskSet, seed: int) -> list[Problem]:
    src = spec.source
    if isinstance(src, HeldOutEval):
        return task.eval[: spec.size]
    if isinstance(src, FileEval):
        return file_problems(src, what=f"eval {spec.name!r}: source")[: spec.size]
    return _gym_problems(src, spec, seed)


def _gym_problems(src: ReasoningGymEval, spec: EvalConfig, seed: int) -> list[Problem]:
    import reasoning_gym

    # Not the training set's seed: the same name and seed would regenerate the training problems.
    gen_seed = src.seed if src.seed is not None else zlib.crc32(f"{seed}:eval:{spec.name}".encode())
    ds = reasoning_gym.create_dataset(src.name, size=spec.size, seed=gen_seed, **src.params)
    return [Problem(i, ds[i]["question"], str(ds[i]["answer"]), dict(ds[i])) for i in range(spec.size)]


def _reward(spec: EvalConfig, cfg: TaskConfig) -> RewardSpec:
    if spec.reward:  # checked against the allowlist and imported now, as the task's own
        return reward_spec(cfg.model_copy(update={"reward": spec.reward}))
    src = spec.source
    if isinstance(src, HeldOutEval):
        return reward_spec(cfg)
    if isinstance(src, FileEval):
        return RewardSpec("math")
    return RewardSpec("reasoning_gym", src.name, tuple(sorted(src.params.items())))
