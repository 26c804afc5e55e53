"""`shared.sizing`'s learner estimate against the measured CPU peak of real learner steps.

Each case runs `python -m benchmarks.learner_memory` in its own process: a random Llama of the shape,
two learner steps (micro-batches, chunked log-probs, the clipped loss, backward, AdamW), peak
resident anonymous memory over the one before the model was built (polled; glibc's mmap threshold
fixed, so freed tensors leave it; file-backed pages, which a loaded box drops and faults in, are
not counted). The estimate must be within FACTOR of the measurement either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FACTOR = 1.6
"""Stated accuracy: estimate / measured within [1 / 1.6, 1.6] (measured on 2026-12-02: 0.93-1.47;
the estimate errs high on the tiny Llama, whose per-token overheads weigh more)."""


def _measure(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.learner_memory", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("checkpointing", [False, True])
def test_tiny_llama_estimate_within_factor(checkpointing):
    # the tests' tiny Llama; 8 rows x 1024 tokens, so activations (~100 MB) dominate
    r = _measure("--shape", "tiny-llama", "--rows", "8", "--prompt", "256", "--completion", "768",
                 *(["--checkpointing"] if checkpointing else []))
    assert r["measured_bytes"] > 40e6, r  # large enough to measure
    assert 1 / FACTOR <= r["ratio"] <= FACTOR, r


@pytest.mark.slow
def test_smollm2_135m_shaped_estimate_within_factor():
    # a random SmolLM2-135M-shaped model: float32 weights, gradients and AdamW (~2.2 GB) dominate
    r = _measure("--shape", "smollm2-135m", "--rows", "1", "--prompt", "64", "--completion", "192")
    assert r["measured_bytes"] > 1.5e9, r
    assert 1 / FACTOR <= r["ratio"] <= FACTOR, r
