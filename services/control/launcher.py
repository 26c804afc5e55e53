"""How a run reaches its services: one `Launcher` interface, one implementation per deployment.

- `LocalLauncher` (`dashrl run`, `dashrl control` on one box): starts the learner and the
  samplers as child processes, watches them, and records a failure (service, exit code, log
  tail) in the run record when one exits badly; the others are then asked to stop gracefully.
- `AssignmentLauncher` (compose, Kubernetes): publishes one `RunAssignment` per needed process
  to the `ASSIGNMENTS` stream; long-running `dashrl worker`s take them (`services.control.worker`)
  and start the same service processes through `services.control.supervise`.

Either way the services learn everything else from Redis (stop flag, heartbeats), so the
control plane's API code does not know which launcher it has.
"""

from __future__ import annotations

import abc
import json
import logging
import queue
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import redis

from services.control.gpus import plan_gpus, visible_gpus
from services.control.runs_store import RunsStore
from services.control.supervise import (
    ServiceSpec, Torchrun, free_port, log_tail, spawn, split_threads, terminate, write_run_config,
)
from shared.broadcast import Broadcast
from shared.config import RunConfig
from shared.keys import ASSIGNMENTS
from shared.metrics import ControlMetrics
from shared.protocol import RunAssignment
from shared.run_folder import run_dir
from shared.runstate import RunState

log = logging.getLogger(__name__)


class Launcher(abc.ABC):
    name: str

    @abc.abstractmethod
    def launch(self, run_id: str, cfg: RunConfig) -> None:
        """Start (or hand off) the run's services. Raises if that is impossible."""

    def close(self, grace_s: float = 0.0) -> None:
        """Release what the launcher holds (the local one ends its children)."""


class AssignmentLauncher(Launcher):
    name = "workers"

    def __init__(self, r: redis.Redis, maxlen: int = 1000, learner_nodes: int = 1) -> None:
        self.out = Broadcast(r, ASSIGNMENTS, maxlen=maxlen)
        self.learner_nodes = learner_nodes
        """One learner assignment per node: the nodes' workers then meet in one torchrun job."""

    def launch(self, run_id: str, cfg: RunConfig) -> None:
        data = cfg.model_dump(mode="json")
        for _node in range(self.learner_nodes):
            self.out.publish(RunAssignment(run_id, data, role="learner"))
        for shard in range(cfg.sampler.num_shards):
            shard_cfg = {**data, "sampler": {**data["sampler"], "shard_index": shard}}
            self.out.publish(RunAssignment(run_id, shard_cfg, role="sampler"))


@dataclass
class _LocalRun:
    run_id: str
    procs: dict[str, tuple[ServiceSpec, subprocess.Popen]]
    deadline: float | None = None
    """Set once the run should wind down: services still alive after it are terminated."""
    terminated: set[str] = field(default_factory=set)
    """Instances this launcher ended (their exit code is not a failure)."""
    exited: set[str] = field(default_factory=set)
    """Instances whose exit has been judged."""
    done: threading.Event = field(default_factory=threading.Event)


class LocalLauncher(Launcher):
    """Child processes, started and watched from one long-lived thread (so the children's
    parent-death signal fires when this launcher's process dies, not when a request thread ends)."""

    name = "local"

    def __init__(self, store: RunsStore, redis_url: str, *, stop_grace_s: float = 120.0,
                 poll_s: float = 0.5, metrics: ControlMetrics | None = None, gpus: list[str] | None = None) -> None:
        self.store, self.redis_url, self.grace, self.poll_s, self.metrics = store, redis_url, stop_grace_s, poll_s, metrics
        self.gpus = gpus  # GPU ids to hand out (tests inject them); None: `gpus.visible_gpus()`
        self._runs: dict[str, _LocalRun] = {}
        self._commands: queue.Queue[tuple[str, RunConfig, Future]] = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-launcher", daemon=True)
        self._thread.start()

    # --- called from any thread ----------------------------------------------------------
    def launch(self, run_id: str, cfg: RunConfig) -> None:
        fut: Future = Future()
        self._commands.put((run_id, cfg, fut))
        fut.result(timeout=60)

    def wait(self, run_id: str, timeout: float | None = None) -> bool:
        """Block until every process of the run has exited; False on timeout."""
        run = self._runs.get(run_id)
        return True if run is None else run.done.wait(timeout)

    def kill(self, run_id: str) -> None:
        """Ask the loop to terminate the run's processes now (a second Ctrl-C)."""
        run = self._runs.get(run_id)
        if run is not None:
            run.deadline = 0.0

    def close(self, grace_s: float = 0.0) -> None:
        """Stop every run gracefully within `grace_s`, then terminate what is left."""
        for run in [r for r in self._runs.values() if not r.done.is_set()]:
            if grace_s > 0:
                try:
                    RunState(self.store.r, run.run_id).request_stop("control plane shutting down")
                except redis.RedisError as err:
                    log.warning("run %s: cannot request a graceful stop: %s", run.run_id, err)
            run.deadline = time.monotonic() + grace_s
        for run in list(self._runs.values()):
            run.done.wait(grace_s + 30)
        self._closing.set()
        self._thread.join(10)

    # --- the launcher thread -------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._take_commands()
                for run in list(self._runs.values()):
                    if not run.done.is_set():
                        self._watch(run)
            except redis.RedisError as err:  # the children keep running; try again next tick
                log.warning("local launcher: Redis error while watching runs: %s", err)
            time.sleep(self.poll_s)
        for run in self._runs.values():
            for _spec, proc in run.procs.values():
                terminate(proc)
            run.done.set()

    def _take_commands(self) -> None:
        while True:
            try:
                run_id, cfg, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._runs[run_id] = self._start(run_id, cfg)
                if self.metrics is not None:
                    self.metrics.launches.labels(launcher=self.name).inc()
                fut.set_result(None)
            except Exception as err:  # reported to the caller, which answers the API request
                fut.set_exception(err)

    def _start(self, run_id: str, cfg: RunConfig) -> _LocalRun:
        cfg = cfg.model_copy(update={"run_id": run_id})
        config_path, folder = write_run_config(cfg), run_dir(cfg)
        roles = [("learner", "learner", [])] + [
            ("sampler", f"sampler-{i}", [f"sampler.shard_index={i}"]) for i in range(cfg.sampler.num_shards)]
        threads = split_threads(len(roles))
        gpus = plan_gpus(visible_gpus() if self.gpus is None else self.gpus, cfg.learner.num_gpus,
                         cfg.sampler.num_shards)
        learner_ranks = len(gpus.get("learner", []))
        specs = [ServiceSpec(role, inst, run_id, config_path, self.redis_url, folder / "logs" / f"{inst}.log",
                             metrics_port=free_port(), threads=threads, overrides=ov, gpus=gpus.get(inst),
                             torchrun=Torchrun(str(learner_ranks)) if role == "learner" and learner_ranks > 1 else None)
                 for role, inst, ov in roles]
        self.store.set_fields(run_id, metrics_ports=_ports_json(specs))
        procs = {}
        for spec in specs:
            procs[spec.instance] = (spec, spawn(spec))
            log.info("run %s: started %s (pid %d), log %s", run_id, spec.instance, procs[spec.instance][1].pid, spec.log_path)
        return _LocalRun(run_id, procs)

    def _watch(self, run: _LocalRun) -> None:
        rs = RunState(self.store.r, run.run_id)
        for inst, (spec, proc) in run.procs.items():
            code = proc.poll()
            if code is None or inst in run.exited:
                continue
            run.exited.add(inst)
            self._judge_exit(run, spec, code, rs)
        if run.deadline is None and rs.should_stop():
            run.deadline = time.monotonic() + self.grace
        alive = [(i, p) for i, (_s, p) in run.procs.items() if p.poll() is None]
        if alive and run.deadline is not None and time.monotonic() >= run.deadline:
            for inst, proc in alive:
                log.warning("run %s: %s did not exit in time after stop; terminating it", run.run_id, inst)
                run.terminated.add(inst)
                terminate(proc)
            alive = []
        if not alive:  # the launcher saw every process exit: no need to wait for goodbyes
            self.store.set_fields(run.run_id, services_exited=1)
        self.store.refresh(run.run_id)
        if not alive:
            run.done.set()

    def _judge_exit(self, run: _LocalRun, spec: ServiceSpec, code: int, rs: RunState) -> None:
        """A service exited: a failure unless it exited 0 at the right time, or we ended it."""
        if spec.instance in run.terminated:
            return
        reason = None
        if code != 0:
            reason = f"exit code {code}"
        elif spec.role == "learner" and not rs.learner_done():
            reason = "learner exited 0 without finishing its run"
        elif spec.role == "sampler" and not rs.should_stop():
            reason = "sampler exited 0 while the run was still going"
        if reason is None:
            log.info("run %s: %s exited cleanly", run.run_id, spec.instance)
            return
        tail = log_tail(spec.log_path)
        log.error("run %s: %s failed (%s); log %s:\n%s", run.run_id, spec.instance, reason, spec.log_path, tail)
        if self.metrics is not None:
            self.metrics.service_failures.labels(service=spec.role).inc()
        self.store.record_failure(run.run_id, spec.role, code, f"{reason}\n{tail}")
        rs.request_stop(f"{spec.instance} failed")  # the others wind down (the learner checkpoints)


def _ports_json(specs: list[ServiceSpec]) -> str:
    return json.dumps({s.instance: s.metrics_port for s in specs})
