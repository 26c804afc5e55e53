"""`dashrl run CONFIG`: the local all-in-one run.

An embedded Redis (unless DASHRL_REDIS_URL is set), the control plane in a thread of this
process (API + dashboard on loopback), one learner and one sampler per shard as child processes
(the local launcher), a progress line, and at the end `runs/<id>/report.png` and a summary.
Ctrl-C (or SIGTERM) stops gracefully — samplers stop, the learner finishes its step, checkpoints
and exits; a second Ctrl-C terminates the services. Exit code 0 when the run finished or was
stopped; 1 naming the service that failed; 2 for a bad config.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time

from services.control.api.runs import new_run_id, start_run
from services.control.app import create_app
from services.control.launcher import LocalLauncher
from services.control.progress import Progress
from services.control.report import summarize_run, write_report
from services.control.runs_store import RunsStore
from services.control.server import BackgroundServer
from services.control.settings import ControlSettings
from services.control.status import TERMINAL, RunView
from shared.config import Deployment, RunConfig
from shared.configio import load_config
from shared.embedded_redis import redis_url_for_run
from shared.redis_client import connect
from shared.run_folder import run_dir


def _pick_port(wanted: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRun:
    def __init__(self, cfg: RunConfig, redis_url: str, port: int) -> None:
        self.cfg, self.run_id, self.folder = cfg, cfg.run_id, run_dir(cfg)
        self.store = RunsStore(connect(redis_url))
        self.launcher = LocalLauncher(self.store, redis_url)
        settings = ControlSettings(redis_url=redis_url, host="127.0.0.1", port=port, launcher="local")
        self.server = BackgroundServer(create_app(settings, r=self.store.r, launcher=self.launcher), "127.0.0.1", port)
        self.progress = Progress(sys.stderr)
        self.interrupts = 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.interrupts += 1

    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.server.start()
            try:
                start_run(self.store, self.launcher, self.cfg)
            except ValueError as err:  # a config the box cannot run (too few GPUs): one line, exit 2
                print(f"dashrl run: {err}", file=sys.stderr)
                return 2
            self.progress.message(f"dashrl run {self.run_id}: dashboard {self.server.url}/ , folder {self.folder}")
            view = self._watch()
            return self._finish(view)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.launcher.close()
            self.server.stop()

    def _watch(self) -> RunView:
        handled = 0
        while not self.launcher.wait(self.run_id, 1.0):
            if self.interrupts > handled:
                handled = self.interrupts
                if handled == 1:
                    self.store.request_stop(self.run_id, "interrupted (Ctrl-C)")
                    self.progress.message("stopping gracefully: the learner finishes its step and checkpoints "
                                          "(Ctrl-C again to terminate)")
                else:
                    self.progress.message("terminating the services")
                    self.launcher.kill(self.run_id)
            self.progress.update(self.store.view(self.run_id))
        return self.store.view(self.run_id)

    def _finish(self, view: RunView) -> int:
        self.progress.update(view, force=True)
        self.progress.close()
        rewards = [(p["t"], p["reward_mean"]) for p in self.store.series(self.run_id) if "reward_mean" in p]
        report = write_report(self.folder, view.created_at, reward_fallback=rewards)
        summary = summarize_run(self.folder, view.created_at, view.ended_at or time.time())
        out = [f"run {self.run_id}: {view.state}"] + ["  " + line for line in summary.lines()]
        out.append(f"  folder: {self.folder}" + (f" (report: {report.name})" if report else ""))
        if view.state not in TERMINAL:
            out.append(f"dashrl run: services were terminated while the run was {view.state}")
        if view.failure is not None:
            f = view.failure
            out.append(f"dashrl run: {f.service} failed (exit code {f.exit_code}); log: "
                       f"{self.folder / 'logs'}\n{f.log_tail}")
        print("\n".join(out), file=sys.stderr if view.failure else sys.stdout)
        if view.state in ("finished", "stopped"):
            return 0
        return 130 if view.failure is None and self.interrupts > 1 else 1


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if not cfg.run_id:
        cfg = cfg.model_copy(update={"run_id": new_run_id()})
    folder = run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    dep = Deployment.from_env()
    port = _pick_port(args.port if args.port is not None else dep.control_port)
    with redis_url_for_run(folder, dep.redis_url) as redis_url:
        return LocalRun(cfg, redis_url, port).run()

