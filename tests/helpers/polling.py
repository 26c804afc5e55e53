"""Waiting in tests: poll a condition with a deadline (never sleep-and-hope), failing fast and
with the evidence when a process the wait depends on dies."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(cond: Callable[[], T], what: str, timeout: float = 60.0, *, every: float = 0.1,
             procs: subprocess.Popen | Iterable[subprocess.Popen] = (), clean_exit_ok: bool = False,
             log: Path | None = None) -> T:
    """Poll `cond()` every `every` seconds until it returns something truthy, and return that.

    Fails (AssertionError naming `what`, the last value and the tail of `log` if given) after
    `timeout` seconds, or as soon as one of `procs` has exited while `cond()` is still false
    (with `clean_exit_ok`, exiting with status 0 is not a failure: that process finished its part).
    """
    procs = [procs] if isinstance(procs, subprocess.Popen) else list(procs)
    deadline = time.monotonic() + timeout
    while True:
        last = cond()
        if last:
            return last
        dead = [p for p in procs if p.poll() is not None and not (clean_exit_ok and p.returncode == 0)]
        if dead or time.monotonic() > deadline:
            why = (f"{_name(dead[0])} exited with {dead[0].returncode}" if dead
                   else f"timed out after {timeout}s")
            raise AssertionError(f"{why} waiting for {what}{_evidence(last, log)}")
        time.sleep(every)


def _name(proc: subprocess.Popen) -> str:
    args = proc.args if isinstance(proc.args, (list, tuple)) else [proc.args]
    return "process " + " ".join(str(a) for a in args)[:160]


def _evidence(last: Any, log: Path | None) -> str:
    out = "" if last is None or last is False else f" (last: {last!r})"[:500]
    if log is not None and log.exists():
        out += "\n" + log.read_text(errors="replace")[-3000:]
    return out
