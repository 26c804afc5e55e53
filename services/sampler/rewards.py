"""Verifiers and the process pool that runs them.

A verifier turns (completion text, problem) into a float reward. Built in: reasoning-gym's own
scorer for its datasets (answer taken from the last <answer>...</answer>), math-verify for
{prompt, answer} files (the last \\boxed{} against a LaTeX or `#### N` reference, see
`math_verifier`), and any `module:function` named in the
config — `fn(completion: str, answer: str) -> float` — imported only from allowlisted module
prefixes.

Scoring runs in worker processes, never in the generation loop: math-verify (and any signal
based timeout) needs its process's main thread, and a slow verifier must not stall sampling.
Each call gets `reward_timeout_s` through SIGALRM inside the worker; a call that raises, returns
a non-number or times out scores 0 and is counted, and a worker stuck where no signal reaches
(C code) is detected by the parent and the pool is rebuilt. Nothing here stops the sampler.
"""

from __future__ import annotations

import importlib
import logging
import math
import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from shared.config import JsonlTask, TaskConfig
from shared.configio import ConfigError

log = logging.getLogger(__name__)

RewardFn = Callable[[str, str, dict], float]


RewardKind = Literal["reasoning_gym", "math", "function"]
"""A reasoning-gym dataset's own scorer, the math verifier, or a config-named function."""


@dataclass(frozen=True)
class RewardSpec:
    """Which verifier to run; small and picklable so worker processes can rebuild it."""

    kind: RewardKind
    target: str = ""  # dataset name, or "module:function"
    params: tuple[tuple[str, Any], ...] = ()  # reasoning-gym generator params


def reward_spec(cfg: TaskConfig) -> RewardSpec:
    """The task's verifier; a config-named function is checked against the allowlist and imported
    here once, so a bad name fails at startup with a ConfigError instead of scoring 0 forever."""
    if cfg.reward:
        spec = RewardSpec("function", cfg.reward)
        check_allowed(cfg.reward, cfg.reward_allowlist)
        _resolve(spec)
        return spec
    if isinstance(cfg.source, JsonlTask):
        return RewardSpec("math")
    return RewardSpec("reasoning_gym", cfg.source.name, tuple(sorted(cfg.source.params.items())))


def check_allowed(target: str, allowlist: list[str]) -> None:
    module, sep, func = target.partition(":")
    if not sep or not module or not func:
        raise ConfigError(f"task.reward: {target!r} is not 'module:function'")
    dotted = module + "."
    if not any(dotted.startswith(p if p.endswith(".") else p + ".") for p in allowlist):
        raise ConfigError(f"task.reward: module {module!r} is not under task.reward_allowlist {allowlist}")


_RESOLVED: dict[RewardSpec, RewardFn] = {}


def _resolve(spec: RewardSpec) -> RewardFn:
    """The verifier as fn(completion, answer, entry) -> float (cached per process)."""
    if spec in _RESOLVED:
        return _RESOLVED[spec]
    if spec.kind == "function":
        module, _, name = spec.target.partition(":")
        try:
            user_fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"task.reward: cannot import {spec.target!r}: {err}") from None
        if not callable(user_fn):
            raise ConfigError(f"task.reward: {spec.target!r} is not callable")
        fn: RewardFn = lambda completion, answer, entry: user_fn(completion, answer)  # noqa: E731
    elif spec.kind == "math":
        import services.sampler.math_verifier  # noqa: F401  (math-verify + sympy: ~3 s, at worker start)

        fn = math_reward
    elif spec.kind == "reasoning_gym":
        import reasoning_gym
        from reasoning_gym.utils import extract_answer

        scorer = reasoning_gym.create_dataset(spec.target, size=1, seed=0, **dict(spec.params)).score_answer
        fn = lambda completion, answer, entry: scorer(extract_answer(completion), entry)  # noqa: E731
    else:
        raise ValueError(f"unknown reward kind {spec.kind!r}")
    _RESOLVED[spec] = fn
    return fn


def math_reward(completion: str, answer: str, entry: dict | None = None) -> float:
    """1.0 when the completion's last \\boxed{} (else its `#### N` line) equals the reference's
    final answer, else 0.0 (no boxed answer: 0). What is accepted: `math_verifier` and
    docs/sampler.md "What the MATH verifier accepts"."""
    from services.sampler.math_verifier import answers_match

    return 1.0 if answers_match(answer, completion) else 0.0


def _warm(ready, *specs: RewardSpec) -> None:
    """Worker start: import the verifiers now, so a first call isn't billed for the imports
    (math-verify takes ~3 s), then count this worker in `ready` (a shared counter)."""
    for spec in specs:
        try:
            _resolve(spec)
        except Exception:  # the call itself will fail, score 0 and be counted
            log.exception("reward worker: cannot load verifier %s", spec)
    with ready.get_lock():
        ready.value += 1


class RewardTimeout(BaseException):
    """Raised by SIGALRM inside a worker (BaseException: a verifier's `except Exception` can't eat it)."""


def _alarm(signum, frame):
    raise RewardTimeout()


def score_one(spec: RewardSpec, completion: str, answer: str, entry: dict, timeout_s: float) -> tuple[float, str]:
    """Run one verifier call in this (worker) process's main thread. Returns (score, outcome)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        value = float(_resolve(spec)(completion, answer, entry))
        return (value, "ok") if math.isfinite(value) else (0.0, "error")
    except RewardTimeout:
        return 0.0, "timeout"
    except Exception as err:  # any verifier bug scores 0; the parent counts and logs it
        return 0.0, f"error:{type(err).__name__}: {err}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class ScoreResult:
    scores: np.ndarray  # (N,) float32
    failures: Counter  # kind -> count: "error", "timeout", "hung"
    first_error: str = ""
    seconds: float = 0.0
    """From submission to the last score."""


class RewardPool:
    """Worker processes scoring completions; `submit()` returns at once, `ScoreJob.result()` waits.

    Thread-safe (the finisher thread and the eval in the loop thread share it). A stuck worker is
    judged pool-wide: calls outstanding and none finished for `stall_s` (every call ends within
    `timeout_s` by SIGALRM), so a job queued behind another job's long batch is not misjudged.
    The clock starts when every worker has imported its verifier (a pool still starting is judged
    stuck only after `startup_s`): otherwise a short `timeout_s` would kill each fresh pool
    while it imports, forever.
    """

    startup_s = 60.0

    def __init__(self, spec: RewardSpec, timeout_s: float, workers: int = 2,
                 also: tuple[RewardSpec, ...] = ()) -> None:
        self.spec, self.timeout_s, self.workers = spec, timeout_s, workers
        self.warm = (spec, *dict.fromkeys(s for s in also if s != spec))  # other verifiers (evals')
        self.stall_s = timeout_s + max(2.0, timeout_s)
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch/vLLM threads
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.generation = 0  # bumped by each rebuild; calls of an older generation were killed
        self.outstanding = 0
        self.last_progress = time.monotonic()

    def _new_pool(self):
        self._ready, self._started = self._ctx.Value("i", 0), time.monotonic()
        return self._ctx.Pool(self.workers, initializer=_warm, initargs=(self._ready, *self.warm))

    def submit(self, items: list[tuple[str, str, dict]], spec: RewardSpec | None = None) -> "ScoreJob":
        """items: (completion text, reference answer, problem entry); `spec`: another verifier
        than the pool's (an eval's)."""
        return ScoreJob(self, items, spec)

    def score(self, items: list[tuple[str, str, dict]], spec: RewardSpec | None = None) -> ScoreResult:
        return self.submit(items, spec).result()

    def apply(self, args: tuple, deliver: Callable[[tuple[float, str]], None]) -> int:
        """Queue one `score_one(*args)`; `deliver` gets its result. Returns the pool generation."""
        with self._lock:
            if self.outstanding == 0:
                self.last_progress = time.monotonic()
            self.outstanding += 1
            gen = self.generation
            self._pool.apply_async(score_one, args, callback=lambda res: self._finished(gen, deliver, res),
                                   error_callback=lambda err: self._finished(gen, deliver, (0.0, f"error:{err!r}")))
        return gen

    def _finished(self, gen: int, deliver: Callable, res: tuple[float, str]) -> None:
        with self._lock:
            if gen == self.generation:
                self.outstanding -= 1
                self.last_progress = time.monotonic()
        deliver(res)

    def stalled(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._ready.value < self.workers:  # still starting: the stall clock starts when all are ready
                self.last_progress = now
                return now - self._started > self.startup_s
            return self.outstanding > 0 and now - self.last_progress > self.stall_s

    def rebuild(self, seen_generation: int) -> None:
        """Kill the workers and start fresh ones (once, however many jobs noticed the stall)."""
        with self._lock:
            if self.generation != seen_generation:
                return
            log.error("reward pool: no call finished for %.1fs; killing and restarting the workers", self.stall_s)
            old, self._pool = self._pool, self._new_pool()
            self.generation, self.outstanding, self.last_progress = self.generation + 1, 0, time.monotonic()
        old.terminate()  # outside the lock: terminate joins the thread that runs our callbacks
        old.join()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


class ScoreJob:
    def __init__(self, pool: RewardPool, items: list[tuple[str, str, dict]], spec: RewardSpec | None = None) -> None:
        self.pool, self.n, self.start = pool, len(items), time.monotonic()
        self.done: queue.Queue = queue.Queue()
        self.generation = -1
        for i, (completion, answer, entry) in enumerate(items):
            self.generation = pool.apply((spec or pool.spec, completion, answer, entry, pool.timeout_s),
                                         lambda res, i=i: self.done.put((i, res)))

    def result(self) -> ScoreResult:
        scores = np.zeros(self.n, dtype=np.float32)
        failures: Counter = Counter()
        first_error, got = "", set()
        while len(got) < self.n:
            try:
                i, (value, outcome) = self.done.get(timeout=0.5)
            except queue.Empty:
                if self.pool.generation != self.generation or self.pool.stalled():
                    self.pool.rebuild(self.generation)  # no-op if another job already did
                    failures["hung"] += self.n - len(got)
                    break
                continue
            got.add(i)
            scores[i] = value
            if outcome != "ok":
                kind = "timeout" if outcome == "timeout" else "error"
                failures[kind] += 1
                first_error = first_error or outcome
        if failures:
            log.warning("rewards: %s failed calls scored 0 (%s)", dict(failures), first_error)
        return ScoreResult(scores, failures, first_error, time.monotonic() - self.start)
