"""k8s/: each overlay (and each optional component) builds with kustomize, every resource is
valid against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail), and the
manifests keep the rules the deployment depends on."""

from __future__ import annotations

import shutil

import kubernetes_validate
import pytest
import yaml

from shared.configio import validate as validate_run_config
from tests.helpers.kustomize import K8S, OVERLAYS, build, containers

K8S_VERSION = "1.30.0"
WORKLOADS = ("Deployment", "StatefulSet", "Job")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}  # not in the core schemas: checked by hand


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# kustomize runs as a child process: every test of an overlay is marked `process`
@pytest.fixture(scope="module", params=[pytest.param(o, id=o.name, marks=pytest.mark.process) for o in OVERLAYS])
def overlay(request) -> tuple[str, list[dict]]:
    return request.param.name, build(request.param)


def test_overlays_are_the_ones_documented():
    assert [p.name for p in OVERLAYS] == ["cpu-demo", "gpu"]


def test_every_resource_is_schema_valid(overlay):
    name, docs = overlay
    assert len(docs) >= 12
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_field_is_caught(overlay):
    _name, docs = overlay
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deploy))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.process
def test_components_build_on_an_overlay(tmp_path):
    """The optional Ingress and ServiceMonitor, added to the gpu overlay as docs/deploy.md says."""
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    kust = work / "overlays/gpu/kustomization.yaml"
    data = yaml.safe_load(kust.read_text())
    data["components"] = ["../../components/ingress", "../../components/servicemonitor"]
    kust.write_text(yaml.safe_dump(data))
    docs = build(work / "overlays/gpu")
    ingress = by_kind(docs, "Ingress")["dashrl-control"]
    kubernetes_validate.validate(ingress, K8S_VERSION, strict=True)
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "dashrl-control"
    monitor = by_kind(docs, "ServiceMonitor")["dashrl"]
    ports = {p["name"] for s in by_kind(docs, "Service").values() for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    selected = [s for s in by_kind(docs, "Service").values()
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in selected} >= {"dashrl-control", "dashrl-sampler", "dashrl-learner"}


def test_probes_resources_and_non_root(overlay):
    name, docs = overlay
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for c in containers(doc):
            where = f"{name} {doc['metadata']['name']}/{c['name']}"
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            if doc["kind"] != "Job":
                assert "livenessProbe" in c and "readinessProbe" in c, where


def test_redis_is_persistent_and_only_dashrl_reaches_it(overlay):
    _name, docs = overlay
    redis = by_kind(docs, "StatefulSet")["dashrl-redis"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    policy = by_kind(docs, "NetworkPolicy")["dashrl-redis"]["spec"]
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert policy["policyTypes"] == ["Ingress"] and len(policy["ingress"]) == 1
    allowed = policy["ingress"][0]["from"]
    assert len(allowed) == 1 and "namespaceSelector" not in allowed[0]
    selector = allowed[0]["podSelector"]
    assert selector["matchLabels"] == {"app.kubernetes.io/part-of": "dashrl"}
    (expr,) = selector["matchExpressions"]
    assert (expr["key"], expr["operator"], sorted(expr["values"])) == (
        "app.kubernetes.io/component", "In", ["control", "learner", "sampler"])
    # ...and those are exactly the pods that hold the Redis password
    for doc in docs:
        for c in containers(doc) if doc["kind"] in WORKLOADS else []:
            holds = any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("key") == "redis-password"
                        for e in c.get("env", []))
            component = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            assert holds == (component in ("control", "sampler", "learner", "redis")), (doc["metadata"]["name"], c["name"])


def test_runs_volume_is_shared_and_mounted(overlay):
    name, docs = overlay
    pvcs = by_kind(docs, "PersistentVolumeClaim")
    expected = ["ReadWriteOnce"] if name == "cpu-demo" else ["ReadWriteMany"]
    assert pvcs["dashrl-runs"]["spec"]["accessModes"] == expected
    for workload in (by_kind(docs, "Deployment")["dashrl-sampler"], by_kind(docs, "StatefulSet")["dashrl-learner"]):
        claims = {v["persistentVolumeClaim"]["claimName"] for v in workload["spec"]["template"]["spec"]["volumes"]
                  if "persistentVolumeClaim" in v}
        assert claims == {"dashrl-runs", "dashrl-models"}


def test_replicas_match_the_run_config_and_learner_nodes(overlay):
    name, docs = overlay
    maps = by_kind(docs, "ConfigMap")
    run_cfg = next(m for n, m in maps.items() if n.startswith("dashrl-run-config"))
    cfg = validate_run_config(yaml.safe_load(run_cfg["data"]["run.yaml"]))
    env = next(m for n, m in maps.items() if n.startswith("dashrl-env"))["data"]
    assert by_kind(docs, "Deployment")["dashrl-sampler"]["spec"]["replicas"] == cfg.sampler.num_shards
    learner = by_kind(docs, "StatefulSet")["dashrl-learner"]
    assert learner["spec"]["replicas"] == int(env["DASHRL_LEARNER_NODES"])
    headless = by_kind(docs, "Service")[learner["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    args = learner["spec"]["template"]["spec"]["containers"][0]["args"]
    endpoint = args[args.index("--rdzv-endpoint") + 1]
    assert endpoint == f"{learner['metadata']['name']}-0.{headless['metadata']['name']}:29400"
    assert cfg.output_dir == "/runs" and cfg.model.path.startswith("/models/")


def test_gpu_overlay_requests_gpus(overlay):
    name, docs = overlay
    for workload in (by_kind(docs, "Deployment")["dashrl-sampler"], by_kind(docs, "StatefulSet")["dashrl-learner"]):
        (c,) = workload["spec"]["template"]["spec"]["containers"]
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        if name == "gpu":
            assert gpus == 1 and c["image"] == "dashrl:gpu"
        else:
            assert gpus is None and c["image"] == "dashrl:cpu"
    learner_args = by_kind(docs, "StatefulSet")["dashrl-learner"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--nproc-per-node" in learner_args) == (name == "gpu")


def test_secrets(overlay):
    name, docs = overlay
    secrets = by_kind(docs, "Secret")
    if name == "gpu":
        assert not secrets  # created by the operator (docs/deploy.md), never committed
    else:
        assert set(secrets["dashrl-secrets"]["data"]) == {"api-token", "redis-password"}
