"""The control plane's HTTP API fuzzed from its own OpenAPI spec with schemathesis, through a
real uvicorn on real Redis: no request, valid or not, with or without the token, gets a 5xx."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.control_server import ControlServer

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).parent / "schemathesis"


@pytest.mark.skipif(not CLI.exists() and shutil.which("schemathesis") is None,
                    reason="schemathesis not installed (pip install -e .[dev])")
@pytest.mark.parametrize("auth", [True, False], ids=["token", "no-token"])
def test_openapi_fuzz_finds_no_server_error(redis_proc, redis_client, tmp_path, auth):
    with ControlServer(redis_proc.url, tmp_path) as server:
        args = [str(CLI if CLI.exists() else shutil.which("schemathesis")), "run", server.url + "/openapi.json",
                "--checks", "not_a_server_error", "--max-examples", "40", "--seed", "1",
                "--request-timeout", "10", "--workers", "1", "--no-color",
                "--suppress-health-check", "all"]
        if auth:
            args += ["-H", f"Authorization: Bearer {server.token}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        log = server.log()
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated and int(generated[1]) == int(generated[2]) >= 100, report[-3000:]  # really exercised
    if auth:
        assert "No issues found" in report, report[-3000:]
    else:  # every mutating operation answered only 401 to the unauthenticated fuzzer
        assert "2 operations returned only 401/403" in report, report[-3000:]
        assert "- POST /v1/runs\n" in report and "- POST /v1/runs/{run_id}/stop" in report
    assert "Traceback" not in log, log[-3000:]
