"""Reward functions for sampler tests (imported by config name, from worker processes).

A random tiny model never solves a task, so its verifier scores every completion 0 and gradient
filtering drops everything; `digit_fraction` gives partial credit that varies between
completions, so batches keep samples. The others misbehave on purpose.
"""

from __future__ import annotations

import signal
import time


def digit_fraction(completion: str, answer: str) -> float:
    return sum(ch.isdigit() for ch in completion) / max(len(completion), 1)


def exact(completion: str, answer: str) -> float:
    return 1.0 if completion.strip() == answer.strip() else 0.0


def raises(completion: str, answer: str) -> float:
    if completion == "boom":
        raise RuntimeError("verifier bug")
    return 1.0


def slow(completion: str, answer: str) -> float:
    if completion == "slow":
        time.sleep(30)
    return 1.0


def not_a_number(completion: str, answer: str) -> float:
    return float("nan") if completion == "nan" else 1.0


def hangs_unreachably(completion: str, answer: str) -> float:
    """Blocks SIGALRM first, like C code that never returns to the interpreter."""
    if completion == "hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)
    return 1.0


def sleepy(completion: str, answer: str) -> float:
    """A slow but well-behaved verifier (0.4 s a call, inside any timeout >= 0.5 s)."""
    time.sleep(0.4)
    return 1.0
