"""`dashrl worker --role sampler|learner`: a long-running worker for compose or Kubernetes.

It waits on the `ASSIGNMENTS` stream through the consumer group `<role>-workers` (so each
assignment goes to exactly one worker of its role), starts the assigned service as a child
process (`services.control.supervise`, exactly as the local launcher does), waits for it, records
a failure in the run record if it exits badly, acks the assignment, and waits again.

An assignment is acked only after its service has exited. A worker that is killed mid-run and
restarts under the same name (`DASHRL_WORKER_ID`, default the host name: stable for StatefulSet
pods and restarted containers) finds its own un-acked assignment first and resumes it (the
learner with `--resume`). While it runs a service, a worker refreshes its assignment's idle time;
an assignment idle longer than `stale_after_s` belonged to a worker that is gone (a rescheduled
Deployment pod, a recreated compose container, which come back under new names), so any idle
worker of the role claims it and resumes it.

`--alive-file` is touched on every pass of the loop (at least every few seconds) for a liveness
probe (`dashrl probe --alive-file`); `--nproc-per-node`/`--nnodes` start the learner under torchrun.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import redis

from services.control.runs_store import RunsStore
from services.control.status import TERMINAL
from services.control.supervise import (
    ServiceSpec, Torchrun, log_tail, spawn, terminate, write_run_config,
)
from shared.config import Deployment, RunConfig
from shared.keys import ASSIGNMENTS, PAYLOAD_FIELD
from shared.protocol import ProtocolError, RunAssignment, decode
from shared.redis_client import connect, with_retry
from shared.run_folder import run_dir
from shared.runstate import RunState

log = logging.getLogger("dashrl.worker")


class Worker:
    def __init__(self, r: redis.Redis, role: str, name: str, redis_url: str, metrics_port: int, *,
                 torchrun: Torchrun | None = None, alive_file: Path | None = None,
                 stale_after_s: float = 60.0) -> None:
        self.r, self.role, self.name, self.redis_url, self.metrics_port = r, role, name, redis_url, metrics_port
        self.torchrun, self.alive_file, self.stale_ms = torchrun, alive_file, int(stale_after_s * 1000)
        self.group = f"{role}-workers"
        self.store = RunsStore(r)
        self.stopping = threading.Event()

    def beat(self) -> None:
        """Show a liveness probe that the loop is turning."""
        if self.alive_file is not None:
            self.alive_file.touch()

    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(ASSIGNMENTS, self.group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def next_assignment(self, block_ms: int = 2000) -> tuple[str, RunAssignment | None, bool] | None:
        """(entry id, assignment or None if undecodable, resumed?) or None when nothing came.
        Order: this worker's own un-acked entry, then a gone worker's, then a new one."""
        for source in ("own", "stale", "new"):
            entries = self._read(source, block_ms)
            if entries and entries[0][1]:
                entry_id, fields = entries[0][0].decode(), entries[0][1]
                try:
                    return entry_id, decode(fields.get(PAYLOAD_FIELD, b""), expect=RunAssignment), source != "new"
                except ProtocolError as err:
                    log.error("assignment %s is undecodable, dropping it: %s", entry_id, err)
                    return entry_id, None, False
            if source == "own" and entries:  # entry trimmed from the stream while pending
                self.ack(entries[0][0].decode())
        return None

    def _read(self, source: str, block_ms: int) -> list:
        if source == "stale":
            resp = with_retry(lambda: self.r.xautoclaim(ASSIGNMENTS, self.group, self.name, self.stale_ms,
                                                        start_id="0-0", count=1), what="claim assignments")
            if resp[1]:
                log.warning("claiming assignment %s of a worker gone for over %.0fs", resp[1][0][0].decode(),
                            self.stale_ms / 1000)
            return resp[1]
        start, block = ("0", None) if source == "own" else (">", block_ms)
        resp = with_retry(lambda: self.r.xreadgroup(self.group, self.name, {ASSIGNMENTS: start},
                                                    count=1, block=block), what="read assignments")
        return resp[0][1] if resp else []

    def keep_claimed(self, entry_id: str) -> None:
        """Reset the assignment's idle time, so that no other worker takes it as a gone worker's."""
        with_retry(lambda: self.r.xclaim(ASSIGNMENTS, self.group, self.name, 0, [entry_id], justid=True),
                   what="refresh assignment")

    def ack(self, entry_id: str) -> None:
        with_retry(lambda: self.r.xack(ASSIGNMENTS, self.group, entry_id), what="ack assignment")

    def handle(self, a: RunAssignment, resumed: bool, entry_id: str = "") -> bool:
        """Run the assigned service to its end. Returns False if this worker is being stopped
        (the assignment must then stay un-acked, for a restarted worker to resume)."""
        rs = RunState(self.r, a.run_id)
        if self.store.refresh(a.run_id) in TERMINAL or rs.should_stop():
            log.info("run %s: already ending, skipping its %s assignment", a.run_id, self.role)
            return True
        cfg = RunConfig.model_validate(a.config).model_copy(update={"run_id": a.run_id})
        folder = run_dir(cfg)
        spec = ServiceSpec(self.role, f"{self.role}-{self.name}", a.run_id, write_run_config(cfg), self.redis_url,
                           folder / "logs" / f"{self.role}-{self.name}.log", metrics_port=self.metrics_port,
                           threads=int(os.environ.get("OMP_NUM_THREADS") or 0) or 1, resume=resumed,
                           torchrun=self.torchrun)
        proc = spawn(spec)
        log.info("run %s: started %s (pid %d)%s", a.run_id, self.role, proc.pid, " resuming" if resumed else "")
        refreshed = time.monotonic()
        while proc.poll() is None:
            self.beat()
            if entry_id and time.monotonic() - refreshed > self.stale_ms / 4000:
                self.keep_claimed(entry_id)
                refreshed = time.monotonic()
            if self.stopping.wait(1.0):
                terminate(proc, wait_s=60)
                return False
        code = proc.returncode
        if code != 0:
            tail = log_tail(spec.log_path)
            log.error("run %s: %s exited %d:\n%s", a.run_id, self.role, code, tail)
            self.store.record_failure(a.run_id, self.role, code, f"exit code {code}\n{tail}")
            rs.request_stop(f"{self.role} failed")
        self.store.refresh(a.run_id)
        return True

    def serve(self, once: bool = False) -> int:
        self.ensure_group()
        log.info("worker %s (%s) waiting for assignments", self.name, self.role)
        while not self.stopping.is_set():
            self.beat()
            got = self.next_assignment()
            if got is None:
                continue
            entry_id, a, resumed = got
            if a is not None and a.role in (self.role, "any"):
                if not self.handle(a, resumed, entry_id):
                    return 0
            self.ack(entry_id)
            if once and a is not None and a.role in (self.role, "any"):
                return 0
        return 0


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    dep = Deployment.from_env()
    if not dep.redis_url:
        log.error("DASHRL_REDIS_URL is not set")
        return 2
    name = args.name or dep.worker_id or socket.gethostname()
    torchrun, nnodes = None, args.nnodes or dep.learner_nodes
    if args.role == "learner" and (args.nproc_per_node is not None or nnodes > 1):
        if nnodes > 1 and not args.rdzv_endpoint:
            log.error("%d learner nodes need --rdzv-endpoint (node 0's host:port)", nnodes)
            return 2
        torchrun = Torchrun(args.nproc_per_node or "1", nnodes, args.rdzv_endpoint)
    worker = Worker(connect(dep.redis_url), args.role, name, dep.redis_url, dep.metrics_port, torchrun=torchrun,
                    alive_file=Path(args.alive_file) if args.alive_file else None, stale_after_s=args.stale_after_s)
    # SIGTERM (docker stop, pod deletion) and Ctrl-C: end the child, leave the assignment un-acked.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())
    return worker.serve(once=args.once)
