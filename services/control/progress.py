"""The progress line of `dashrl run`: a redrawn bar on a terminal, periodic lines in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from services.control.status import RunView


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_line(view: RunView, elapsed_s: float, width: int = 20) -> str:
    step, total = view.learner_step or 0, view.max_steps or 0
    frac = min(1.0, step / total) if total else 0.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    mins, secs = divmod(int(elapsed_s), 60)
    return (f"[{bar}] step {step}/{total or '?'} v{_fmt(view.policy_version, 'd')} | "
            f"reward {_fmt(view.reward_mean, '.3f')} | acc {_fmt(view.eval_accuracy, '.3f')} | "
            f"sampler {_fmt(view.tokens_per_s.sampler, '.0f')} tok/s | learner {_fmt(view.tokens_per_s.learner, '.0f')} tok/s"
            f" | {view.state} {mins:02d}:{secs:02d}")


class Progress:
    def __init__(self, out: TextIO = sys.stderr, every_s: float = 15.0) -> None:
        self.out, self.every_s = out, every_s
        self.tty = out.isatty()
        self.start = time.monotonic()
        self._last_print, self._last_key, self._width = 0.0, None, 0

    def update(self, view: RunView, force: bool = False) -> None:
        line = format_line(view, time.monotonic() - self.start)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.out.write("\r" + line + " " * pad)
            self._width = len(line)
            self.out.flush()
            return
        # Without a terminal: a line when the step or state changes, at most every `every_s`.
        key, now = (view.learner_step, view.state), time.monotonic()
        due = now - self._last_print >= self.every_s
        changed = key != self._last_key and now - self._last_print >= min(self.every_s, 5.0)
        if due or changed or (force and key != self._last_key):
            self.out.write(line + "\n")
            self.out.flush()
            self._last_print, self._last_key = now, key

    def message(self, text: str) -> None:
        if self.tty and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self.out.flush()
            self._width = 0
