"""compose.yaml (and the 8-GPU override) against the compose-spec JSON schema, plus the rules the
stack depends on: secrets required, Redis persistent and password-protected, healthchecks gating
every dependency, GPUs where the gpu profile wants them, Prometheus scraping every service."""

from __future__ import annotations

import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.helpers.compose_file import (
    COMPOSE, ROOT, InterpolationError, active_services, compose_schema, example_env, is_dashrl_service,
    load_compose,
)

OVERRIDE = ROOT / "compose.8gpu.yaml"


@pytest.fixture(scope="module")
def doc() -> dict:
    return load_compose()


@pytest.mark.parametrize("path", [COMPOSE, OVERRIDE], ids=lambda p: p.name)
def test_schema_valid(path):
    jsonschema.validate(load_compose(path), compose_schema())


def test_schema_rejects_a_typo(doc):
    broken = {**doc, "services": {**doc["services"], "control": {**doc["services"]["control"], "comand": ["x"]}}}
    with pytest.raises(jsonschema.ValidationError, match="comand"):
        jsonschema.validate(broken, compose_schema())


@pytest.mark.parametrize("secret", ["REDIS_PASSWORD", "DASHRL_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"])
def test_secrets_are_required(secret):
    with pytest.raises(InterpolationError, match=f"required variable {secret} .*set {secret} in .env"):
        load_compose(env=example_env(**{secret: ""}))


def test_profiles_split_gpu_and_cpu(doc):
    gpu, cpu = active_services(doc, {"gpu"}), active_services(doc, {"cpu"})
    shared = {"redis", "control", "prometheus", "grafana"}
    assert set(gpu) == shared | {"sampler", "learner"} and set(cpu) == shared | {"sampler-cpu", "learner-cpu"}
    for name in ("sampler", "learner"):
        devices = gpu[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"] and devices[0]["device_ids"]
        assert cpu[f"{name}-cpu"]["command"][:3] == gpu[name]["command"][:3] == ["worker", "--role", name]
        assert "resources" not in cpu[f"{name}-cpu"].get("deploy", {})
    assert gpu["sampler"]["build"]["target"] == "gpu" and cpu["sampler-cpu"]["build"]["target"] == "cpu"
    # GPU ids and sampler replicas come from .env
    env = example_env(DASHRL_SAMPLER_GPU="3", DASHRL_LEARNER_GPU="5", DASHRL_SAMPLERS="2")
    custom = load_compose(env=env)["services"]
    assert custom["sampler"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["3"]
    assert custom["learner"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["5"]
    assert custom["sampler"]["deploy"]["replicas"] == "2"
    assert "--nproc-per-node" in gpu["learner"]["command"]  # torchrun, one rank per GPU it was given


def test_redis_persistent_and_password_protected(doc):
    redis = doc["services"]["redis"]
    cmd = redis["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes" and cmd[cmd.index("--dir") + 1] == "/data"
    assert cmd[cmd.index("--requirepass") + 1] == example_env()["REDIS_PASSWORD"]
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in doc["volumes"]
    assert "ports" not in redis  # reachable on the compose network only
    for name, svc in doc["services"].items():
        if is_dashrl_service(svc):
            assert svc["environment"]["DASHRL_REDIS_PASSWORD"] == example_env()["REDIS_PASSWORD"], name


def test_dependencies_wait_for_health(doc):
    for name, svc in doc["services"].items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert how["condition"] == "service_healthy", (name, dep)
            assert doc["services"][dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_volumes_carry_weights_and_models(doc):
    for name in ("sampler", "learner", "sampler-cpu", "learner-cpu"):
        assert {"runs:/runs", "models:/models"} <= set(doc["services"][name]["volumes"]), name
    assert "./configs:/etc/dashrl/configs:ro" in doc["services"]["control"]["volumes"]
    for rel in ("configs/compose-cpu.yaml", "configs/compose-gpu.yaml"):
        assert yaml.safe_load((ROOT / rel).read_text())["output_dir"] == "/runs"


def test_prometheus_scrapes_every_service(doc):
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for profile in ({"gpu"}, {"cpu"}):
        services = active_services(doc, profile)
        names = {n: n for n in services}
        for n, s in services.items():
            names.update({a: n for a in ((s.get("networks") or {}).get("default") or {}).get("aliases", [])})
        targets = []
        for job in prom["scrape_configs"]:
            targets += [tuple(t.split(":")) for c in job.get("static_configs", []) for t in c["targets"]]
            targets += [(n, str(c["port"])) for c in job.get("dns_sd_configs", []) for n in c["names"]]
        for host, port in targets:
            assert host in names, (profile, host)
            svc = services[names[host]]
            assert port in svc["expose"], (host, port)
            assert svc["environment"].get("DASHRL_METRICS_PORT", svc["environment"].get("DASHRL_CONTROL_PORT")) == port
        scraped = {names[h] for h, _p in targets}
        assert {n for n, s in services.items() if is_dashrl_service(s)} <= scraped, profile


def test_grafana_provisioned_from_the_repo(doc):
    grafana = doc["services"]["grafana"]
    for mount in grafana["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_dir(), source
    assert any(m.endswith(":/etc/grafana/provisioning:ro") for m in grafana["volumes"])


def test_override_extends_real_services():
    raw = load_compose(OVERRIDE)
    base = load_compose()["services"]
    for name, svc in raw["services"].items():
        target = svc.get("extends", {}).get("service", name)
        assert target in base, name


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.process
@pytest.mark.skipif(_compose_cli() is None, reason="no Docker Compose CLI here (the schema test above still runs)")
def test_docker_compose_config_accepts_the_files(tmp_path):
    env = {**example_env(), "PATH": __import__("os").environ["PATH"]}
    for files in (["-f", str(COMPOSE)], ["-f", str(COMPOSE), "-f", str(OVERRIDE)]):
        for profile in ("gpu", "cpu"):
            out = subprocess.run([*_compose_cli(), *files, "--profile", profile, "config", "-q"], env=env,
                                 cwd=ROOT, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr


@pytest.mark.process
@pytest.mark.skipif(_compose_cli() is None, reason="no Docker Compose CLI here (test_secrets_are_required still runs)")
@pytest.mark.parametrize("secret", ["REDIS_PASSWORD", "DASHRL_API_TOKEN"])
def test_docker_compose_refuses_an_empty_secret(secret):
    env = {**example_env(**{secret: ""}), "PATH": __import__("os").environ["PATH"]}
    out = subprocess.run([*_compose_cli(), "-f", str(COMPOSE), "--profile", "cpu", "config", "-q"], env=env,
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and secret in out.stderr, out.stderr
