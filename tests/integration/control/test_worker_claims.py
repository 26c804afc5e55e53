"""`dashrl worker` assignment hand-over on a real Redis: a live worker keeps its assignment; one
that is gone (no refresh) loses it to an idle worker, which resumes it; several learner nodes
each get their own assignment; torchrun is put in front of the learner when asked."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pytest

from services.control import worker as worker_mod
from services.control.launcher import AssignmentLauncher
from services.control.supervise import ServiceSpec, Torchrun, command
from services.control.worker import Worker
from shared.broadcast import Broadcast
from shared.config import RunConfig
from shared.keys import ASSIGNMENTS
from shared.protocol import RunAssignment


def make_worker(r, url: str, name: str, role: str = "sampler", stale_after_s: float = 60.0) -> Worker:
    w = Worker(r, role, name, url, 0, stale_after_s=stale_after_s)
    w.ensure_group()
    return w


def test_gone_workers_assignment_is_claimed_live_ones_is_not(redis_client, redis_proc):
    a = make_worker(redis_client, redis_proc.url, "pod-a", stale_after_s=0.3)
    b = make_worker(redis_client, redis_proc.url, "pod-b", stale_after_s=0.3)
    Broadcast(redis_client, ASSIGNMENTS).publish(RunAssignment("r1", RunConfig().model_dump(mode="json"), "sampler"))
    entry_id, assignment, resumed = a.next_assignment(block_ms=100)
    assert (assignment.run_id, assignment.role, resumed) == ("r1", "sampler", False)

    # While A refreshes its claim, B (idle, reading) never gets it.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        a.keep_claimed(entry_id)
        assert b.next_assignment(block_ms=50) is None

    # A stops refreshing (its pod is gone): B claims the same entry and resumes it.
    got = None
    deadline = time.monotonic() + 10
    while got is None and time.monotonic() < deadline:
        got = b.next_assignment(block_ms=50)
    assert got is not None and got[0] == entry_id and got[2] is True
    pending = redis_client.xpending_range(ASSIGNMENTS, "sampler-workers", "-", "+", 10)
    assert [(p["message_id"].decode(), p["consumer"].decode()) for p in pending] == [(entry_id, "pod-b")]


def test_one_learner_assignment_per_node(redis_client, redis_proc):
    AssignmentLauncher(redis_client, learner_nodes=2).launch("r2", RunConfig())
    nodes = [make_worker(redis_client, redis_proc.url, f"learner-{i}", role="learner") for i in range(3)]
    got = [w.next_assignment(block_ms=100) for w in nodes]
    # each entry goes to one worker of the group; the third is the run's sampler assignment,
    # which a learner worker acks and skips (Worker.serve)
    assert [(g[1].run_id, g[1].role) for g in got] == [("r2", "learner"), ("r2", "learner"), ("r2", "sampler")]
    assert len({g[0] for g in got}) == 3


def test_learner_command_under_torchrun(tmp_path):
    spec = ServiceSpec("learner", "learner-x", "r3", tmp_path / "c.yaml", "redis://h:1/0", tmp_path / "l.log",
                       torchrun=Torchrun("gpu", 2, "dashrl-learner-0.dashrl-learner:29400"))
    assert command(spec) == [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=gpu", "--rdzv_backend=c10d",
        "--rdzv_endpoint=dashrl-learner-0.dashrl-learner:29400", "--rdzv_id=r3",
        "-m", "services.cli", "learner", str(tmp_path / "c.yaml"), "--set", "run_id=r3"]
    single = ServiceSpec("learner", "l", "r3", Path("c.yaml"), "u", Path("l"), torchrun=Torchrun("4"))
    assert command(single)[:6] == [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                                   "--nproc_per_node=4", "--standalone"]
    sampler = ServiceSpec("sampler", "s", "r3", Path("c.yaml"), "u", Path("l"), torchrun=Torchrun("4"))
    assert command(sampler)[:3] == [sys.executable, "-m", "services.cli"]  # samplers never run under torchrun
    with pytest.raises(ValueError, match="rendezvous"):
        Torchrun("1", 2).prefix("r")
    # torchrun's own parser takes these flags (a renamed flag in a new torch fails here)
    from torch.distributed.run import get_args_parser

    for cmd in (command(spec), command(single)):
        parsed = get_args_parser().parse_args(cmd[3:])
        assert parsed.module and parsed.training_script == "services.cli"
        assert parsed.training_script_args[:2] == ["learner", cmd[cmd.index("learner") + 1]]
    assert get_args_parser().parse_args(command(spec)[3:]).rdzv_backend == "c10d"


def test_multi_node_learner_without_rendezvous_is_refused(monkeypatch, redis_proc):
    monkeypatch.setenv("DASHRL_REDIS_URL", redis_proc.url)
    monkeypatch.setenv("DASHRL_LEARNER_NODES", "2")
    args = argparse.Namespace(role="learner", name="n", once=True, alive_file=None, stale_after_s=60.0,
                              nproc_per_node=None, nnodes=None, rdzv_endpoint=None)
    assert worker_mod.main(args) == 2
