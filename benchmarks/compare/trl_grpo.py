"""Baseline: train the dashrl demo policy with Hugging Face TRL's own `GRPOTrainer` (TRL 1.16.0
as it ships) on the same model, task, reward, prompts and held-out eval as a dashrl run config,
and write one JSON record for `python -m benchmarks.compare`.

Run (TRL lives in its own venv, never needed by CI or `make test`):

    scripts/ensure-trl-venv.sh                       # once: creates .venv-trl
    .venv/bin/dashrl demo-policy --config configs/demo-cpu.yaml   # once: data/demo-policy
    .venv-trl/bin/python -m benchmarks.compare.trl_grpo --config configs/demo-cpu.yaml \
        --out runs/trl-grpo.json --time-limit 600 --target 0.5 [--eval-every 10] [--set k=v ...]

What is shared with dashrl (imported, not copied): the RunConfig loader, the train/held-out
split (`shared.tasks.load_task`), the epoch-0 prompt order (`PromptOrder`), prompt rendering
(`shared.tasks.PromptRenderer`'s messages or text, checked token for token against its ids at
start-up), the verifier (`score_one` on `reward_spec`) and the
held-out evaluator (`Evaluator.score`, greedy, solved = full reward, on the transformers backend).

Matched settings: one optimizer step = sampler.sampling_batch_prompts (M) prompts x group_size (G)
completions made by one generation call (TRL's default: steps_per_generation = gradient
accumulation steps), backprop in micro-batches of learner.micro_batch_size; lr, warm-up (then
constant), grad clip, AdamW betas/weight decay, temperature, top-k/top-p, max new tokens, seed and
gradient checkpointing from the config. Everything else is TRL 1.16's default (beta 0, loss "dapo",
scale_rewards "group", epsilon 0.2, one iteration, no filtering); the JSON records them. No vLLM
(TRL's transformers `generate`), CPU, float32 (TRL's bf16 default turned off), no checkpoints, no
wandb. Unlike dashrl, TRL trains on all M x G samples (no |advantage| filter, no
learner.train_batch_size) and is synchronous.

Clocks: the training clock starts after the step-0 eval and excludes every eval. inference = TRL's
`_generate_and_score_completions` (tokenize, generate, decode, reward, advantages); backprop = the
rest of each optimizer step (forward, backward, clip, AdamW); waiting = the clock minus both
(dataloader, logging: ~0 in a synchronous trainer). Model load and trainer set-up are reported
apart (`setup_s`). Training stops at the first eval with accuracy >= --target, when the clock passes
--time-limit (the step in flight finishes, then a final eval), or at learner.max_steps.

Threads: `--threads 1` (default) runs one torch/OpenMP thread; `--threads 2` pins two
(OMP_PROC_BIND=close, OMP_PLACES=cores, set before torch loads). Measured on the shared 2-core box
(other engineers' runs keeping the load at 2.7-4), demo config, 12 steps, alternating 2,1,2,1:
two pinned threads 1.82 and 4.77 s/step, one thread 1.00 and 0.90 s/step (pinned OpenMP threads
lose badly to any other process on the cores). dashrl's services also run one thread per process.
On an idle box two pinned threads may win: rerun both there.

TRL differences kept as shipped: its constant_with_warmup schedule trains step 1 at lr 0 (dashrl's
warm-up starts at lr/(warmup+1)); a second epoch repeats the epoch-0 order.
"""

from __future__ import annotations

# Only the standard library at module level: the eval's reward workers are spawned processes that
# re-import this file, and torch must not load before the OpenMP settings are made.
import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks import ROOT

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
SETTING_KEYS = (
    "num_generations", "generation_batch_size", "steps_per_generation", "per_device_train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "max_grad_norm",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim", "temperature", "top_k", "top_p",
    "min_p", "repetition_penalty", "max_completion_length", "seed", "beta", "loss_type", "scale_rewards",
    "epsilon", "epsilon_high", "delta", "num_iterations", "importance_sampling_level",
    "mask_truncated_completions", "top_entropy_quantile", "gradient_checkpointing", "bf16", "fp16",
    "shuffle_dataset", "use_vllm", "max_steps", "disable_dropout",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="TRL GRPOTrainer baseline on a dashrl run config")
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="JSON record to write")
    p.add_argument("--time-limit", type=float, required=True, help="training-clock seconds")
    p.add_argument("--target", type=float, required=True, help="held-out greedy accuracy to stop at")
    p.add_argument("--eval-every", type=int, default=None, help="optimizer steps (default sampler.eval_every)")
    p.add_argument("--threads", type=int, default=1, choices=(1, 2))
    p.add_argument("--max-steps", type=int, default=None, help="step cap (default learner.max_steps)")
    return p.parse_args(argv)


def set_thread_env(threads: int) -> None:
    """Before torch loads (libgomp reads these once); also keeps every library offline and quiet."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if threads > 1:
        os.environ.setdefault("OMP_PROC_BIND", "close")
        os.environ.setdefault("OMP_PLACES", "cores")
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Clock:
    """Wall clock that can be paused (evals are not training time)."""

    def __init__(self) -> None:
        self.total, self._since = 0.0, None

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self.total += time.perf_counter() - self._since
            self._since = None

    def now(self) -> float:
        return self.total + (time.perf_counter() - self._since if self._since is not None else 0.0)


class Bench:
    """Clocks, evals and the stop rule; driven by the trainer callback and the timed trainer."""

    def __init__(self, evaluate, eval_every: int, time_limit: float, target: float) -> None:
        self.evaluate, self.eval_every, self.time_limit, self.target = evaluate, eval_every, time_limit, target
        self.clock = Clock()
        self.inference_s = self.backprop_s = self.eval_s = 0.0
        self.step_seconds: list[float] = []
        self.evals: list[dict] = []
        self.train_log: list[dict] = []
        self.time_to_target: float | None = None
        self.stop_reason = "trainer"
        self._step_t0 = self._inf0 = 0.0

    def run_eval(self, step: int, model) -> float:
        elapsed = self.clock.now()
        start = time.perf_counter()
        acc = self.evaluate(model)
        self.eval_s += time.perf_counter() - start
        self.evals.append({"step": step, "elapsed_s": round(elapsed, 3), "accuracy": acc})
        print(f"[trl-bench] eval step {step}: accuracy {acc:.3f} at {elapsed:.1f}s "
              f"({time.perf_counter() - start:.1f}s eval)", flush=True)
        if acc >= self.target and self.time_to_target is None:
            self.time_to_target = elapsed
        return acc

    def train_begin(self, model) -> None:
        self.run_eval(0, model)
        self.clock.start()

    def step_begin(self) -> None:
        self._step_t0, self._inf0 = time.perf_counter(), self.inference_s

    def step_end(self, step: int, max_steps: int, model) -> bool:
        """Account the step; eval when due; True when training should stop."""
        dt = time.perf_counter() - self._step_t0
        self.step_seconds.append(dt)
        self.backprop_s += dt - (self.inference_s - self._inf0)
        over, last = self.clock.now() >= self.time_limit, step >= max_steps
        reached = self.time_to_target is not None  # only possible here when step 0 already reached it
        if not (over or last or reached or step % self.eval_every == 0):
            return False
        self.clock.pause()
        acc = self.run_eval(step, model)
        stop = {"target": reached or acc >= self.target, "time_limit": over, "max_steps": last}
        reasons = [k for k, v in stop.items() if v]
        if reasons:
            self.stop_reason = reasons[0]
            return True
        self.clock.start()
        return False


def build_classes(bench: Bench):
    """The timed GRPOTrainer and the callback (built late: importing them loads torch)."""
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):  # generation + reward + advantages
            start = time.perf_counter()
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                bench.inference_s += time.perf_counter() - start

    class BenchCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            bench.train_begin(model)

        def on_step_begin(self, args, state, control, **kw):
            bench.step_begin()

        def on_step_end(self, args, state, control, model=None, **kw):
            if bench.step_end(state.global_step, state.max_steps, model):
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            keep = ("loss", "reward", "reward_std", "grad_norm", "learning_rate", "frac_reward_zero_std")
            bench.train_log.append({"step": state.global_step, **{k: logs[k] for k in keep if k in (logs or {})}})

    return TimedGRPOTrainer, BenchCallback


def grpo_config(cfg, args: argparse.Namespace, out_dir: Path):
    from trl import GRPOConfig

    s, lr = cfg.sampler, cfg.learner
    per_step = s.sampling_batch_prompts * s.group_size
    if per_step % lr.micro_batch_size:
        raise SystemExit(f"M x G = {per_step} is not a multiple of learner.micro_batch_size {lr.micro_batch_size}")
    return GRPOConfig(
        output_dir=str(out_dir), report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        num_generations=s.group_size, per_device_train_batch_size=lr.micro_batch_size,
        gradient_accumulation_steps=per_step // lr.micro_batch_size,  # steps_per_generation follows it
        learning_rate=lr.lr, lr_scheduler_type=SCHEDULES[lr.schedule], warmup_steps=lr.warmup_steps,
        max_grad_norm=lr.max_grad_norm, weight_decay=lr.weight_decay,
        adam_beta1=lr.betas[0], adam_beta2=lr.betas[1], gradient_checkpointing=lr.activation_checkpointing,
        max_steps=args.max_steps or lr.max_steps, temperature=s.temperature,
        top_k=s.top_k if s.top_k > 0 else 0, top_p=s.top_p, max_completion_length=s.max_new_tokens,
        seed=cfg.seed, data_seed=cfg.seed, shuffle_dataset=False,  # rows are already in dashrl's order
        use_vllm=False, bf16=False, fp16=False, use_cpu=True, dataloader_num_workers=0,
    )


def build_data(cfg, renderer, task):
    """Training rows in the dashrl sampler's epoch-0 prompt order, over-long prompts dropped as
    the sampler drops them; prompts as chat messages (or rendered text without a chat template)."""
    from datasets import Dataset

    from services.sampler.tasks import PromptOrder

    order = PromptOrder(len(task.train), cfg.seed).shard(0).tolist()
    keep = [i for i in order if len(renderer.ids(task.train[i])) <= cfg.sampler.max_prompt_tokens]
    chat = renderer.uses_chat_template
    prompts = [renderer.messages(task.train[i].question) if chat else renderer.text(task.train[i].question)
               for i in keep]
    return Dataset.from_dict({"prompt": prompts, "index": keep}), len(order) - len(keep)


def check_prompts(trainer, dataset, renderer, task, n: int = 64) -> None:
    """TRL's own tokenization of the first prompts must equal dashrl's PromptRenderer ids."""
    rows = dataset.select(range(min(n, len(dataset))))
    ids, _, _ = trainer._tokenize_prompts(list(rows["prompt"]))
    for got, i in zip(ids, rows["index"]):
        want = renderer.ids(task.train[i])
        if list(got) != want:
            raise SystemExit(f"prompt mismatch on train problem {i}: TRL {list(got)} vs dashrl {want}")


def make_reward(cfg, task):
    from services.sampler.rewards import reward_spec, score_one

    spec, timeout = reward_spec(cfg.task), cfg.task.reward_timeout_s

    def dashrl_reward(prompts, completions, index, **kw) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [score_one(spec, t, task.train[i].answer, task.train[i].entry, timeout)[0]
                for t, i in zip(texts, index)]

    return dashrl_reward


def make_evaluate(cfg, renderer, task, backend):
    """Greedy held-out accuracy through dashrl's Evaluator on the live training model."""
    import numpy as np
    import torch

    from services.sampler.backends import SamplingSettings
    from services.sampler.eval_sets import EvalSet
    from services.sampler.evaluation import SOLVED, Evaluator
    from services.sampler.rewards import RewardPool, reward_spec
    from shared.eval_config import DEFAULT_EVAL, EvalConfig

    s, spec = cfg.sampler, reward_spec(cfg.task)
    pool = RewardPool(spec, cfg.task.reward_timeout_s, cfg.task.reward_workers)
    held_out = EvalSet(EvalConfig(name=DEFAULT_EVAL), task.eval, spec, renderer.system_prompt)
    evaluator = Evaluator(held_out, renderer, pool, SamplingSettings(), s.max_prompt_tokens)
    greedy = SamplingSettings(n=1, temperature=0.0, top_k=s.top_k, top_p=s.top_p,
                              max_new_tokens=s.max_new_tokens, seed=cfg.seed)

    def evaluate(model) -> float:
        rng = torch.get_rng_state()  # the backend seeds torch; keep TRL's sampling stream untouched
        was_training = model.training
        model.eval()
        try:
            scores = evaluator.score(backend, greedy)
        finally:
            torch.set_rng_state(rng)
            model.train(was_training)
        return float(np.mean(scores >= SOLVED)) if len(scores) else 0.0

    return evaluate, evaluator, pool


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    set_thread_env(args.threads)
    out, args.config = Path(args.out).resolve(), str(Path(args.config).resolve())
    os.chdir(ROOT)  # config paths (model.path, data files) are relative to the repo root
    import tempfile

    import torch
    from transformers import AutoTokenizer

    from services.sampler.backends.hf_backend import HFBackend
    from shared.configio import load_config
    from shared.tasks import PromptRenderer, load_task

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
    task = load_task(cfg.task, cfg.data_seed)
    renderer = PromptRenderer(tokenizer, task.system_prompt)
    dataset, dropped = build_data(cfg, renderer, task)
    backend = HFBackend(cfg.model.path, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
    evaluate, evaluator, pool = make_evaluate(cfg, renderer, task, backend)
    bench = Bench(evaluate, args.eval_every or cfg.sampler.eval_every or 10, args.time_limit, args.target)
    Trainer, Callback = build_classes(bench)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="trl-grpo-") as tmp:
        targs = grpo_config(cfg, args, Path(tmp))
        trainer = Trainer(model=backend.model, reward_funcs=make_reward(cfg, task), args=targs,
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[Callback()])
        check_prompts(trainer, dataset, renderer, task)
        setup_s = time.perf_counter() - t_start
        trainer.train()
    pool.close()
    record = make_record(args, bench, targs, evaluator, len(dataset), dropped, setup_s, load0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"[trl-bench] {record['steps']} steps, {record['seconds']['total']:.1f}s training clock, "
          f"{record['seconds_per_step'] or 0:.2f} s/step, final accuracy {record['final_accuracy']:.3f}, "
          f"stop: {bench.stop_reason} -> {out}", flush=True)
    return 0


def make_record(args, bench: Bench, targs, evaluator, n_train: int, dropped: int, setup_s: float,
                load0: tuple) -> dict:
    """The JSON record benchmarks.compare reads (schema in its trl_result)."""
    from importlib.metadata import version

    import torch

    steps = len(bench.step_seconds)
    total = bench.clock.now()
    return {
        "name": "trl-grpotrainer", "trl_version": version("trl"), "transformers_version": version("transformers"),
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "settings": {**effective_settings(targs), "eval_every": bench.eval_every,
                     "eval_problems": len(evaluator.problems), "train_problems": n_train,
                     "train_prompts_dropped": dropped, "time_limit_s": args.time_limit,
                     "config": args.config, "overrides": args.overrides,
                     "omp": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES")}},
        "evals": bench.evals, "time_to_target_s": bench.time_to_target, "target": args.target,
        "final_accuracy": bench.evals[-1]["accuracy"], "steps": steps,
        "samples": steps * targs.generation_batch_size,
        "seconds": {"inference": bench.inference_s, "backprop": bench.backprop_s,
                    "waiting": total - bench.inference_s - bench.backprop_s, "total": total},
        "seconds_per_step": total / steps if steps else None,
        "stop_reason": bench.stop_reason, "setup_s": setup_s, "eval_s": bench.eval_s,
        "step_seconds": [round(x, 4) for x in bench.step_seconds], "train_log": bench.train_log,
        "loadavg_start": load0, "loadavg_end": os.getloadavg(),
    }


def effective_settings(targs) -> dict:
    plain = (int, float, str, bool, type(None))
    return {k: v if isinstance(v := getattr(targs, k), plain) else str(v) for k in SETTING_KEYS}


if __name__ == "__main__":
    sys.exit(main())
