"""The demo's starting policy, made here with no downloads, built once and cached.

Owns the recipe: reasoning-gym problems -> a BPE tokenizer trained on them -> a small untied
Llama -> a short SFT warm start that leaves it with some, but low, accuracy (RL's job is the
rest). Prompts and the split are the shared task vocabulary (`shared.tasks`: rendered and split
as the sampler does). The SFT rows never contain a question of the run's held-out split, so the
start and end accuracies of a run are on questions that neither SFT nor RL trained on. The
folder `DATA_DIR/demo-policy` holds config.json, model.safetensors, tokenizer files,
generation_config.json, the SFT rows (sft.jsonl) and `dashrl-demo-policy.json`, the marker that
names the recipe hash and the measured start accuracy. A later build with the same recipe
reuses the folder; a changed recipe (or RECIPE_VERSION) rebuilds it.

`dashrl demo-policy [--data-dir DIR]` builds or reuses it and prints the path and accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from services.sft.demo_stop import attempt_seed, sft_attempts

# 2: SFT rows exclude the run's held-out questions; 3: SFT until a check split's target;
# 4: the check split asks only questions no SFT row asks (it measures adding, not recall);
# 5: fine checks once the climb begins, fresh attempts when a cap passes (`services.sft.demo_stop`)
RECIPE_VERSION = 5
MARKER = "dashrl-demo-policy.json"
# reasoning-gym draws item i of a dataset seeded s from Random(s + i), so datasets whose seeds
# differ by less than their size share problems: the SFT rows (seed 1 + 1000k) are mostly the
# run's training prompts (seed k), shifted by 1 + 999k items. "unseen" starts far from all of them.
SPLIT_SEEDS = {"sft": 1, "rl": 2, "eval": 3, "check": 4, "unseen": 10**7}
UNSEEN_DRAWS = 5000  # about 1 in 5 is a question neither SFT nor the held-out split asks


@dataclass(frozen=True)
class DemoRecipe:
    """Everything that decides the starting policy (hashed into the cache key).

    Defaults: the calibrated demo (docs/demo.md): two-term additions of numbers 0-100, a
    1.1M-parameter Llama (hidden 128, 4 layers, 4 heads of 32), SFT at lr 1e-3 until greedy
    accuracy on a check split of questions that neither SFT nor the held-out split asks reaches
    `sft_until` (`services.sft.demo_stop`: checks every `check_every` steps from `sft_min_steps`,
    every `fine_every` once the climb has begun, and up to `sft_attempts` fresh starts when one
    reaches `sft_steps` first): where SFT alone is into learning the addition algorithm (the
    phase change). A fixed step count, or a check on training problems (which SFT has seen, so it
    rewards recall), lands on either side of it depending on the seed (docs/notes.md, "A start by
    measure"); `sft_until: None` trains exactly `sft_steps`."""

    task: str = "basic_arithmetic"
    params: dict = field(default_factory=lambda: dict(
        min_terms=2, max_terms=2, min_digits=1, max_digits=2, operators="+",
        allow_parentheses=False, allow_negation=False))
    sft_rows: int = 20000
    sft_steps: int = 1500
    """The most SFT steps of one attempt (with `sft_until: None`, exactly this many)."""
    sft_until: float | None = 0.30
    """Stop SFT at the first check where the check split's greedy accuracy is at least this."""
    sft_min_steps: int = 300
    check_every: int = 50
    fine_every: int = 10
    """Check every this many steps once a check reached `fine_from` (divides `check_every`)."""
    fine_from: float = 0.15
    sft_attempts: int = 3
    check_size: int = 400
    check_unseen: bool = True
    """True: the check asks fresh questions that are neither SFT rows nor held out; False (recipe
    3): training problems, mostly SFT rows. Never the held-out questions."""
    sft_lr: float = 1e-3
    sft_batch: int = 32
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    vocab: int = 384
    seed: int = 0
    """The run seed; with run_size and eval_size it fixes the run's held-out split (`run_split`)."""
    run_size: int = 20000
    eval_size: int = 200

    def digest(self) -> str:
        text = json.dumps({"version": RECIPE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_dataset(recipe: DemoRecipe, split: str, size: int):
    """A reasoning-gym dataset for `split` ("sft", "rl" or "eval"), seeded apart from the others."""
    import reasoning_gym

    seed = SPLIT_SEEDS[split] + 1000 * recipe.seed
    return reasoning_gym.create_dataset(recipe.task, size=size, seed=seed, **recipe.params)


def run_task(recipe: DemoRecipe):
    """The run's task split (`shared.tasks.load_task`, the sampler's split) for this recipe, with no
    system prompt: the run config sets `task.system_prompt: ""` (`recipe_for` checks it)."""
    from shared.config import ReasoningGymTask, TaskConfig
    from shared.tasks import load_task

    src = ReasoningGymTask(name=recipe.task, size=recipe.run_size, params=dict(recipe.params))
    return load_task(TaskConfig(source=src, eval_size=recipe.eval_size, system_prompt=""), recipe.seed)


def run_split(name: str, params: dict, size: int, eval_size: int, seed: int):
    """(dataset, train entries, held-out entries) of a reasoning-gym run task, split by
    `shared.tasks.load_task` exactly as the sampler splits it; the dataset scores answers."""
    recipe = DemoRecipe(task=name, params=params, run_size=size, eval_size=eval_size, seed=seed)
    task = run_task(recipe)
    return make_dataset(recipe, "eval", 1), [p.entry for p in task.train], [p.entry for p in task.eval]


def held_out_of(recipe: DemoRecipe) -> tuple:
    """(dataset, entries): the held-out split of the run this recipe is built for."""
    ds, _, held = run_split(recipe.task, recipe.params, recipe.run_size, recipe.eval_size, recipe.seed)
    return ds, held


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def build_demo_policy(data_dir: str | Path, *, recipe: DemoRecipe | None = None,
                      log: Callable[[str], None] = print) -> Path:
    """Return `data_dir/demo-policy`, building it first unless a build of this recipe is there.
    The start accuracy in the marker is greedy accuracy on the run's held-out split."""
    recipe = recipe or DemoRecipe()
    folder = Path(data_dir) / "demo-policy"
    marker = read_marker(folder)
    if marker and marker.get("recipe_hash") == recipe.digest():
        log(f"demo policy: reusing {folder} (start accuracy {marker['start_accuracy']:.3f})")
        return folder
    staging = Path(data_dir) / f".demo-policy.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    t0 = time.monotonic()
    info = _build(staging, recipe, log)
    info["build_seconds"] = round(time.monotonic() - t0, 1)
    (staging / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    # Swap in whole: a crash mid-build leaves the old folder (or none), never a half one.
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    log(f"demo policy: built {folder} in {info['build_seconds']}s, start accuracy {info['start_accuracy']:.3f}")
    return folder


def sft_entries(recipe: DemoRecipe, held_questions: set[str]) -> list[dict]:
    """The SFT problems: `sft_rows` problems of the recipe's own generator seed, less any whose
    question is one of the run's held-out questions."""
    return [e for e in make_dataset(recipe, "sft", recipe.sft_rows) if e["question"] not in held_questions]


def check_split(recipe: DemoRecipe, train: list, sft_questions: set[str], held_questions: set[str]) -> list:
    """The check split, never the held-out questions: deciding when to stop SFT by the held-out
    split would tune the start on the questions the run is scored on. By default `check_size`
    of the run's training problems (mostly SFT rows too); with `check_unseen`, fresh problems
    whose question is neither an SFT row nor held out, so that, like the held-out split, the
    check asks for adding rather than recall."""
    import random

    from shared.tasks import Problem

    if not recipe.check_unseen:
        return random.Random(SPLIT_SEEDS["check"] + 1000 * recipe.seed).sample(train, min(recipe.check_size, len(train)))
    fresh = (e for e in make_dataset(recipe, "unseen", UNSEEN_DRAWS)
             if e["question"] not in sft_questions and e["question"] not in held_questions)
    return [Problem(i, e["question"], str(e["answer"]), dict(e)) for i, e in zip(range(recipe.check_size), fresh)]


def prepare(recipe: DemoRecipe) -> dict:
    """Everything a build trains and checks with, before SFT: the run's task split, the SFT rows,
    the tokenizer and renderer, the fresh model, the verifier and the check split."""
    import torch

    from services.sft.evaluate import reasoning_gym_verifier
    from services.sft.tiny_llama import TinyLlamaShape, new_model, train_tokenizer
    from shared.config import ReasoningGymTask
    from shared.tasks import Problem, PromptRenderer, reference_completion

    torch.manual_seed(recipe.seed)
    task = run_task(recipe)
    entries = sft_entries(recipe, {p.question for p in task.eval})
    if not entries:
        raise ValueError("demo policy: every SFT problem is a held-out question; widen the task")
    src = ReasoningGymTask(name=recipe.task, size=recipe.run_size, params=dict(recipe.params))
    problems = [Problem(i, e["question"], str(e["answer"])) for i, e in enumerate(entries)]
    rows = [{"prompt": p.question, "completion": reference_completion(p, src)} for p in problems]
    # Trained on the raw problem text of SFT rows; the answer tags are added to it as whole tokens.
    tokenizer = train_tokenizer((e["question"] + " " + e["answer"] for e in entries[:5000]), recipe.vocab)
    shape = TinyLlamaShape(recipe.hidden, recipe.layers, recipe.heads, recipe.intermediate)
    return dict(task=task, rows=rows, dropped=recipe.sft_rows - len(entries), tokenizer=tokenizer,
                renderer=PromptRenderer(tokenizer, ""),  # the run's rendering (chat template, no system prompt)
                shape=shape, model=new_model(tokenizer, shape, seed=recipe.seed), held=task.eval,
                verify=reasoning_gym_verifier(recipe.task, dict(recipe.params)),
                check=check_split(recipe, task.train, {r["prompt"] for r in rows}, {p.question for p in task.eval}))


def sft_settings(recipe: DemoRecipe, seed: int | None = None):
    from services.sft.sft import SftSettings

    return SftSettings(lr=recipe.sft_lr, batch_size=recipe.sft_batch, max_steps=recipe.sft_steps,
                       warmup_steps=min(20, recipe.sft_steps // 5), schedule="constant",
                       seed=recipe.seed if seed is None else seed, log_every=max(1, recipe.sft_steps // 5))


def _build(out: Path, recipe: DemoRecipe, log: Callable[[str], None]) -> dict:
    from services.sft.evaluate import accuracy
    from services.sft.sft import save_model
    from services.sft.sft_data import encode_row, write_rows

    b = prepare(recipe)
    renderer, rows = b["renderer"], b["rows"]
    log(f"demo policy: {len(rows)} SFT rows ({b['dropped']} dropped: held-out questions)")
    out.mkdir(parents=True)
    write_rows(out / "sft.jsonl", rows)
    n_params = sum(p.numel() for p in b["model"].parameters())
    log(f"demo policy: {n_params / 1e6:.2f}M-param Llama, vocab {len(b['tokenizer'])}, SFT up to {recipe.sft_steps} "
        f"steps x {recipe.sft_batch} on {recipe.task}, until the check split reaches {recipe.sft_until}")
    examples = [encode_row(renderer, r) for r in rows]  # once; every attempt trains on the same rows
    sft = sft_attempts(recipe, lambda attempt, stop: _train_attempt(recipe, b, examples, attempt, stop, log),
                       lambda: accuracy(b["model"], renderer, b["check"], b["verify"]), log)
    save_model(b["model"], b["tokenizer"], out)
    start = accuracy(b["model"], renderer, b["held"], b["verify"])
    checks = sft["checks"]
    return dict(recipe_hash=recipe.digest(), recipe_version=RECIPE_VERSION, recipe=asdict(recipe),
                params=n_params, sft_final_loss=round(sft["losses"][-1], 4), sft_steps_run=len(sft["losses"]),
                check_accuracy=checks[-1][1] if checks else None, checks=checks, attempts=sft["attempts"],
                start_accuracy=start, eval_size=len(b["held"]), sft_rows_used=len(rows))


def _train_attempt(recipe: DemoRecipe, b: dict, examples: list, attempt: int, stop, log) -> list[float]:
    """One SFT attempt: attempt 0 trains the model `prepare` made; a later one a fresh model and
    batch order of `attempt_seed` (so `b["model"]` is always the attempt being trained)."""
    from services.sft.sft import train_sft
    from services.sft.tiny_llama import new_model

    seed = attempt_seed(recipe.seed, attempt)
    if attempt:
        b["model"] = new_model(b["tokenizer"], b["shape"], seed=seed)
    return train_sft(b["model"], b["tokenizer"], examples, sft_settings(recipe, seed), log=log, stop=stop,
                     check_every=recipe.fine_every)


def recipe_for(cfg) -> DemoRecipe:
    """The default recipe on a run config's reasoning-gym task and split (name, difficulty params,
    size, eval_size, seed)."""
    from shared.config import ReasoningGymTask
    from shared.configio import ConfigError

    src = cfg.task.source
    if not isinstance(src, ReasoningGymTask):
        raise ConfigError("task.source: the demo policy is built for a reasoning_gym task")
    if cfg.task.system_prompt != "":
        raise ConfigError("task.system_prompt: the demo policy is fine-tuned without one; set it to \"\"")
    return DemoRecipe(task=src.name, params=dict(src.params), seed=cfg.data_seed, run_size=src.size,
                      eval_size=cfg.task.held_out_size)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="run config: build for its task and report accuracy on its held-out split")
    p.add_argument("--data-dir", default=None, help="cache folder (default: $DASHRL_DATA_DIR or ./data)")


def main(args: argparse.Namespace) -> int:
    from shared.config import Deployment
    from shared.configio import load_config

    data_dir = Path(args.data_dir or Deployment.from_env().data_dir)
    recipe = DemoRecipe()
    if args.config:
        cfg = load_config(args.config)
        recipe = recipe_for(cfg)
        if Path(cfg.model.path).resolve() != (data_dir / "demo-policy").resolve():
            print(f"note: {args.config} starts from {cfg.model.path}, not {data_dir / 'demo-policy'}")
    folder = build_demo_policy(data_dir, recipe=recipe, log=lambda m: print(m, flush=True))
    marker = read_marker(folder) or {}
    print(f"{folder}  start accuracy {marker.get('start_accuracy', float('nan')):.3f}")
    return 0
