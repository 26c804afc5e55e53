"""Redis needs a password in compose and Kubernetes, every service is given it, and the
services' own client (`Deployment` + `connect`) gets in with it and is refused without it
(a real password-protected redis-server)."""

import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from shared.config import Deployment
from shared.redis_client import connect
from tests.conftest import free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[3]
K8S_BASE = ROOT / "k8s" / "base"


def test_compose_redis_requires_a_password_and_every_service_has_it():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())  # merges the x-dashrl-env anchors
    services = compose["services"]
    assert "--requirepass" in services["redis"]["command"]
    users = {name: s for name, s in services.items() if "DASHRL_REDIS_URL" in (s.get("environment") or {})}
    assert {"control"} <= set(users)
    for name, s in users.items():
        assert "REDIS_PASSWORD" in str(s["environment"].get("DASHRL_REDIS_PASSWORD")), name


def test_kubernetes_redis_requires_a_password_and_every_pod_has_it():
    docs = [d for p in sorted(K8S_BASE.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in yaml.safe_load_all(p.read_text()) if d]
    workloads = [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet")]
    redis_pods = [w for w in workloads if "redis" in w["metadata"]["name"]]
    assert redis_pods and all("--requirepass" in str(c.get("args", []) + c.get("command", []))
                              for w in redis_pods for c in w["spec"]["template"]["spec"]["containers"])
    others = [w for w in workloads if w not in redis_pods]
    assert len(others) >= 3  # control, learner, sampler
    for w in others:
        for c in w["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            assert "secretKeyRef" in str(env.get("DASHRL_REDIS_PASSWORD")), (w["metadata"]["name"], c["name"])


@pytest.fixture
def locked_redis(tmp_path):
    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", "s3cret/with@odd:chars"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def test_services_connect_with_the_password_and_are_refused_without(locked_redis):
    url = f"redis://127.0.0.1:{locked_redis}/0"
    dep = Deployment.from_env({"DASHRL_REDIS_URL": url, "DASHRL_REDIS_PASSWORD": "s3cret/with@odd:chars"})
    client = connect(dep.redis_url)
    deadline = time.monotonic() + 10
    while True:  # the server may still be starting
        try:
            assert client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    with pytest.raises(redis.AuthenticationError):
        connect(url).ping()
    with pytest.raises(redis.AuthenticationError):
        connect(Deployment.from_env({"DASHRL_REDIS_URL": url, "DASHRL_REDIS_PASSWORD": "wrong"}).redis_url).ping()
