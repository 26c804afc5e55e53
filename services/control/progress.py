"""The progress display of `dashrl run`: a live `rich` bar with ETA on a terminal, periodic
plain lines (`format_line`) in CI logs and any other non-terminal output."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from services.control.status import RunView


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def figures(view: RunView) -> str:
    """The run's numbers after the bar: version, reward, eval accuracy, throughput, state."""
    return (f"v{_fmt(view.policy_version, 'd')} | reward {_fmt(view.reward_mean, '.3f')} | "
            f"acc {_fmt(view.eval_accuracy, '.3f')} | sampler {_fmt(view.tokens_per_s.sampler, '.0f')} tok/s | "
            f"learner {_fmt(view.tokens_per_s.learner, '.0f')} tok/s | {view.state}")


def format_line(view: RunView, elapsed_s: float, width: int = 20) -> str:
    """One plain log line (no terminal): a text bar, the step, the figures and the elapsed time."""
    step, total = view.learner_step or 0, view.max_steps or 0
    frac = min(1.0, step / total) if total else 0.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    mins, secs = divmod(int(elapsed_s), 60)
    return f"[{bar}] step {step}/{total or '?'} {figures(view)} {mins:02d}:{secs:02d}"


class _LiveBar:
    """rich's live progress bar (steps, ETA from the step rate, elapsed) with the figures beside it."""

    def __init__(self, out: TextIO, width: int | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn
        from rich.table import Column

        self.console = Console(file=out, force_terminal=True, width=width)
        # the figures wrap under the bar on a narrow terminal rather than being cut off
        self.bar = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(bar_width=20), TextColumn("ETA"),
                            TimeRemainingColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[figures]}", table_column=Column(no_wrap=False, overflow="fold")),
                            console=self.console, transient=False, auto_refresh=True, refresh_per_second=2)
        self.task = self.bar.add_task("run", total=None, figures="", start=True)
        self._started = False

    def update(self, view: RunView) -> None:
        self.bar.update(self.task, completed=view.learner_step or 0, total=view.max_steps or None,
                        figures=figures(view))
        if not self._started:  # first drawn with numbers, not an empty bar
            self.bar.start()
            self._started = True

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)  # above the live bar

    def close(self) -> None:
        self.bar.stop()


class Progress:
    def __init__(self, out: TextIO = sys.stderr, every_s: float = 15.0, tty: bool | None = None) -> None:
        self.out, self.every_s = out, every_s
        self.tty = out.isatty() if tty is None else tty
        self.start = time.monotonic()
        self._last_print, self._last_key = 0.0, None
        self._live: _LiveBar | None = None

    def update(self, view: RunView, force: bool = False) -> None:
        if self.tty:
            self._live = self._live or _LiveBar(self.out)
            self._live.update(view)
            return
        # Without a terminal: a line when the step or state changes, at most every `every_s`.
        key, now = (view.learner_step, view.state), time.monotonic()
        due = now - self._last_print >= self.every_s
        changed = key != self._last_key and now - self._last_print >= min(self.every_s, 5.0)
        if due or changed or (force and key != self._last_key):
            self.out.write(format_line(view, now - self.start) + "\n")
            self.out.flush()
            self._last_print, self._last_key = now, key

    def message(self, text: str) -> None:
        if self._live is not None:
            self._live.message(text)
            return
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None
