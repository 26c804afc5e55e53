"""A short run of benchmarks/load.py (8 sampler processes, one consumer, real Redis): nothing
lost or committed twice, the stream and the backlog stay within their bound, Redis memory stays
near the bound's payload. The full 5-minute run's numbers are in docs/reliability.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def test_eight_samplers_against_one_consumer(tmp_path):
    out = tmp_path / "load.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.load", "--duration", "10", "--samplers", "8",
                          "--samples", "32", "--completion", "256", "--max-backlog", "16", "--json", str(out)],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["ok"] and got["produced"] > 100 and got["lost"] == 0 and got["duplicates"] == 0
    assert got["produced"] == got["committed"] == got["committed_unique"]
    assert got["peak_backlog"] <= 16 and got["peak_xlen"] <= got["xlen_bound"]
    # bounded memory: the stream's payload bound plus a fixed allowance (client buffers, bookkeeping)
    assert got["redis_used_memory_peak_mb"] < got["payload_bound_mb"] * 2 + 20, got
    assert got["latency_p50_ms"] <= got["latency_p99_ms"] <= got["latency_max_ms"]
