"""python -m benchmarks.gpu_learner --tiny: the GPU benchmark's whole path (synthetic rollouts, packing
with and without prompt sharing, FSDP2 on a one-rank group, chunked log-probs, AdamW) on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.process
def test_tiny_run_writes_every_variant(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_learner", "--tiny", "--out", str(tmp_path)],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_learner.json").read_text())
    runs = {r["variant"]: r for r in result["runs"]}
    assert set(runs) == {"plain", "shared", "packed", "fsdp2"}
    for r in runs.values():
        assert "error" not in r, r
        assert r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["estimate_gib"] > 0
        assert all(s["tokens"] > 0 and s["padded_tokens"] > 0 for s in r["steps"])
    assert all(s["padded_tokens"] >= s["tokens"] for s in runs["plain"]["steps"])  # a row per sample, padded
    assert all(s["padded_tokens"] == s["tokens"] for s in runs["packed"]["steps"])  # packing: no padding
    # prompt sharing packs each prompt once: fewer padded tokens than one row per sample
    assert runs["shared"]["steps"][0]["padded_tokens"] < runs["plain"]["steps"][0]["padded_tokens"]
