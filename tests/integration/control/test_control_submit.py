"""`dashrl submit` against a real control plane (uvicorn, `workers` launcher): the config file
becomes a run whose assignments reach the workers' stream; a wrong token or a bad key fails."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.control_server import ROOT, ControlServer
from shared.keys import ASSIGNMENTS
from shared.protocol import RunAssignment, decode

CONFIG = ROOT / "configs/compose-cpu.yaml"


def submit(server: ControlServer, *args: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHRL_")}
    if token:
        env["DASHRL_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "services.cli", "submit", *args, "--url", server.url],
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)


def test_submit_starts_a_run_with_the_files_config(redis_client, redis_proc, tmp_path):
    with ControlServer(redis_proc.url, tmp_path) as server:
        done = submit(server, str(CONFIG), "--set", "learner.max_steps=7", token=server.token)
        assert done.returncode == 0, done.stderr
        run_id = done.stdout.strip()
        with server.client() as api:
            view = api.get(f"/v1/runs/{run_id}").json()
        assert view["max_steps"] == 7
        entries = redis_client.xrange(ASSIGNMENTS)
        roles = sorted(decode(f[b"m"], expect=RunAssignment).role for _id, f in entries)
        assert roles == ["learner", "sampler"]
        assigned = decode(entries[0][1][b"m"], expect=RunAssignment)
        assert assigned.run_id == run_id and assigned.config["model"]["path"] == "/models/demo-policy"

        wrong = submit(server, str(CONFIG), token="wrong-token-0123456789")
        assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr
        bad = submit(server, str(CONFIG), "--set", "learner.no_such_key=1", token=server.token)
        assert bad.returncode == 2 and "learner.no_such_key" in bad.stderr
        assert len(redis_client.xrange(ASSIGNMENTS)) == 2  # neither failure started anything
