"""`dashrl probe`: each check passes or names what failed (the containers' healthchecks)."""

import argparse
import os
import socket

from services.control import probe


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_alive_file_fresh_stale_missing(tmp_path):
    path = tmp_path / "alive"
    assert "missing" in probe.check_alive_file(path, 60)
    path.touch()
    mtime = path.stat().st_mtime
    assert probe.check_alive_file(path, 60, now=mtime + 59) is None
    assert "last touched 61s ago" in probe.check_alive_file(path, 60, now=mtime + 61)


def test_http_and_redis_failures_are_named():
    port = closed_port()
    assert f"127.0.0.1:{port}" in probe.check_http(f"http://127.0.0.1:{port}/readyz", 1)
    assert probe.check_redis(None, 1) == "DASHRL_REDIS_URL is not set"
    assert probe.check_redis(f"redis://127.0.0.1:{port}/0", 1).startswith("redis: ConnectionError")


def test_redis_check_passes_on_a_live_server(redis_proc):
    assert probe.check_redis(redis_proc.url, 2) is None


def test_main_needs_a_check_and_reports_the_first_failure(tmp_path, capsys, monkeypatch):
    args = dict(http=[], redis=False, alive_file=None, max_age=60.0, timeout=1.0)
    assert probe.main(argparse.Namespace(**args)) == 2
    alive = tmp_path / "alive"
    alive.touch()
    assert probe.main(argparse.Namespace(**{**args, "alive_file": str(alive)})) == 0
    os.utime(alive, (1, 1))
    assert probe.main(argparse.Namespace(**{**args, "alive_file": str(alive)})) == 1
    assert "last touched" in capsys.readouterr().err
