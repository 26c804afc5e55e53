"""deploy/smoke/compose.host-network.yaml, the one file scripts/compose-smoke.sh adds to
compose.yaml: it may only move services onto the host's loopback, swap in locally built bases and
stand-ins, and leave Grafana out; commands and volumes stay compose.yaml's. With a Compose CLI
here, the merged stack is checked as Compose itself resolves it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import jsonschema
import pytest

from tests.helpers.compose_file import ROOT, compose_schema, example_env, load_compose

SMOKE = ROOT / "deploy" / "smoke" / "compose.host-network.yaml"
PORTS = {"DASHRL_PUBLISH_PORT": "18000", "SMOKE_REDIS_PORT": "16379", "SMOKE_PROMETHEUS_PORT": "19090",
         "SMOKE_SAMPLER_METRICS_PORT": "19100", "SMOKE_LEARNER_METRICS_PORT": "19101"}
ENV = example_env(COMPOSE_PROFILES="cpu", DASHRL_SMOKE_BASE="dashrl-local/python:3.11-bookworm",
                  SMOKE_PROMETHEUS_CONFIG="/tmp/prometheus.yml", **PORTS)


@pytest.fixture(scope="module")
def smoke() -> dict:
    """The override with its `!reset` keys removed (they load as None), as Compose merges it."""
    doc = load_compose(SMOKE, ENV)
    for svc in doc["services"].values():
        for key in [k for k, v in svc.items() if v is None]:
            del svc[key]
    return doc


def test_schema_valid_and_only_known_services(smoke):
    jsonschema.validate(smoke, compose_schema())
    assert set(smoke["services"]) <= set(load_compose(env=ENV)["services"])


def test_everything_on_the_host_loopback(smoke):
    running = {n: s for n, s in smoke["services"].items() if "profiles" not in s}
    assert set(running) == {"redis", "control", "sampler-cpu", "learner-cpu", "prometheus"}
    for name, svc in running.items():
        assert svc["network_mode"] == "host", name
        assert not svc.get("ports") and not svc.get("networks"), name
    assert smoke["services"]["control"]["environment"]["DASHRL_CONTROL_HOST"] == "127.0.0.1"
    assert "--bind" in smoke["services"]["redis"]["command"]
    assert any(a.startswith("--web.listen-address=127.0.0.1:") for a in smoke["services"]["prometheus"]["command"])
    assert smoke["services"]["grafana"]["profiles"] == ["grafana-image-unavailable"]


def test_commands_stay_compose_yamls(smoke):
    """The stand-ins run what compose.yaml runs; only the listen address and port differ."""
    base = load_compose(env=ENV)["services"]
    redis = list(smoke["services"]["redis"]["command"])
    i = redis.index("--bind")
    del redis[i:i + 2]
    assert redis == [a.replace("6379", PORTS["SMOKE_REDIS_PORT"]) for a in base["redis"]["command"]]
    prom = smoke["services"]["prometheus"]["command"]
    assert prom[:-1] == base["prometheus"]["command"]
    for name in ("control", "sampler-cpu", "learner-cpu"):
        assert "command" not in smoke["services"][name], name


def _compose_v2() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.process
@pytest.mark.skipif(not _compose_v2(), reason="no Docker Compose v2 CLI here (the checks above still run)")
def test_merged_stack_as_compose_resolves_it():
    env = {**ENV, "PATH": os.environ["PATH"], "COMPOSE_FILE": f"compose.yaml:{SMOKE.relative_to(ROOT)}"}
    out = subprocess.run(["docker", "compose", "--profile", "cpu", "config", "--format", "json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert set(services) == {"redis", "control", "sampler-cpu", "learner-cpu", "prometheus"}
    for name, svc in services.items():
        assert svc["network_mode"] == "host", name
        assert not svc.get("ports") and not svc.get("networks"), name
        assert not svc.get("expose"), name
        if "build" in svc and svc["build"]["context"] == str(ROOT):
            assert svc["build"]["args"]["PYTHON_IMAGE"] == ENV["DASHRL_SMOKE_BASE"], name
    assert services["control"]["environment"]["DASHRL_REDIS_URL"] == "redis://127.0.0.1:16379/0"
    assert services["learner-cpu"]["depends_on"]["control"]["condition"] == "service_healthy"
    volumes = {v["target"]: v["source"] for v in services["prometheus"]["volumes"]}
    assert volumes == {"/etc/prometheus/prometheus.yml": "/tmp/prometheus.yml", "/prometheus": "prometheus-data"}
