"""Every command that the image, a compose service or a Kubernetes manifest runs is a real
`dashrl` subcommand that the CLI's own parser accepts, and every environment variable they set
for dashrl is one that `shared.config.Deployment` reads. A renamed flag or variable fails here."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import tomllib

from services.cli import COMMANDS, build_parser
from shared.config import Deployment
from tests.helpers.compose_file import ROOT, is_dashrl_service, load_compose
from tests.helpers.kustomize import OVERLAYS, build, containers

DOCKERFILE = ROOT / "Dockerfile"
CONFIG_VARS = set(Deployment.ENV.values())
# Set by the Dockerfile for Python and pip themselves, not dashrl settings.
IMAGE_RUNTIME_VARS = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
                      "PIP_DISABLE_PIP_VERSION_CHECK"}
# Heavy dependencies the control plane must not import (its image has none of them).
NOT_IN_CONTROL_IMAGE = {"torch", "transformers", "safetensors", "matplotlib", "peft", "xxhash"}


def assert_real_subcommand(argv: list[str], where: str) -> None:
    assert argv and argv[0] in COMMANDS, f"{where}: {argv[:1]} is not a dashrl subcommand"
    try:
        build_parser().parse_args(argv)
    except SystemExit as err:  # argparse exits 2 on an unknown flag or a missing argument
        pytest.fail(f"{where}: `dashrl {' '.join(argv)}` is refused by the CLI (exit {err.code})")


def dockerfile_stages() -> dict[str, dict]:
    """stage -> {"entrypoint", "cmd", "healthcheck", "env"} from the Dockerfile's exec-form lines."""
    stages, current = {}, None
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if m := re.match(r"FROM \S+ AS (\S+)", line, re.I):
            current = stages.setdefault(m.group(1), {"env": set()})
        elif current is None:
            continue
        elif m := re.match(r"(ENTRYPOINT|CMD) (\[.*\])$", line):
            current[m.group(1).lower()] = json.loads(m.group(2))
        elif m := re.match(r"HEALTHCHECK .*CMD (\[.*\])$", line):
            current["healthcheck"] = json.loads(m.group(1))
        elif line.startswith("ENV "):
            current["env"] |= set(re.findall(r"(\w+)=", line[4:]))
    return stages


def test_dockerfile_runs_the_cli():
    final = {name: s for name, s in dockerfile_stages().items() if "entrypoint" in s}
    assert set(final) == {"control", "cpu", "gpu"}
    for name, stage in final.items():
        assert stage["entrypoint"] == ["dashrl"], name
        assert_real_subcommand(stage["cmd"], f"Dockerfile {name} CMD")
        assert stage["healthcheck"][0] == "dashrl", name
        assert_real_subcommand(stage["healthcheck"][1:], f"Dockerfile {name} HEALTHCHECK")
    for name, stage in dockerfile_stages().items():
        assert stage["env"] <= IMAGE_RUNTIME_VARS | CONFIG_VARS, (name, stage["env"] - IMAGE_RUNTIME_VARS)
    text = DOCKERFILE.read_text()
    assert text.count("USER 10001:10001") == 3  # every final image runs as the non-root user


def compose_files() -> list[tuple[str, dict]]:
    return [(p.name, load_compose(p)) for p in (ROOT / "compose.yaml", ROOT / "compose.8gpu.yaml")]


@pytest.mark.parametrize("name, doc", compose_files(), ids=lambda v: v if isinstance(v, str) else "")
def test_compose_services_run_the_cli(name, doc):
    dashrl = {n: s for n, s in doc["services"].items() if is_dashrl_service(s) and "command" in s}
    if name == "compose.yaml":
        assert set(dashrl) == {"control", "sampler", "learner", "sampler-cpu", "learner-cpu"}
    for svc_name, svc in dashrl.items():
        where = f"{name} {svc_name}"
        assert_real_subcommand(svc["command"], where)
        test = svc["healthcheck"]["test"]
        assert test[:2] == ["CMD", "dashrl"], where
        assert_real_subcommand(test[2:], f"{where} healthcheck")
        assert set(svc["environment"]) <= CONFIG_VARS, (where, set(svc["environment"]) - CONFIG_VARS)
        if "--alive-file" in svc["command"]:  # the probe watches the file the worker touches
            path = svc["command"][svc["command"].index("--alive-file") + 1]
            assert test[test.index("--alive-file") + 1] == path, where


@pytest.mark.process
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_manifests_run_the_cli(overlay):
    docs = build(overlay)
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    checked = 0
    for doc in docs:
        for c in containers(doc):
            if not c["image"].split("/")[-1].startswith("dashrl:"):
                continue
            where = f"{overlay.name} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
            assert "command" not in c, f"{where}: overrides the image's `dashrl` entrypoint"
            assert_real_subcommand(c["args"], where)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command")
                if cmd:
                    assert cmd[0] == "dashrl", where
                    assert_real_subcommand(cmd[1:], f"{where} {probe}")
            names = {e["name"] for e in c.get("env", [])}
            for src in c.get("envFrom", []):
                names |= set(config_maps[src["configMapRef"]["name"]])
            assert names <= CONFIG_VARS, (where, names - CONFIG_VARS)
            checked += 1
    assert checked >= 3, "control, sampler and learner were not all found"


@pytest.mark.process
def test_control_image_needs_no_heavy_dependency():
    """The control target installs dashrl without its dependencies plus a short list; the control
    plane (app, probe, submit) must import and build its app with the heavy ones unavailable."""
    stage = DOCKERFILE.read_text().split("AS control", 1)[1].split("FROM ", 1)[0]
    listed = {re.split(r"[<>=]", p)[0] for p in re.findall(r'"([A-Za-z0-9_.-]+[<>=][^"]*)"', stage)}
    core = {re.split(r"[<>=\[ ]", d)[0] for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert listed == core - NOT_IN_CONTROL_IMAGE
    blocked = sorted(NOT_IN_CONTROL_IMAGE | {"vllm", "reasoning_gym", "math_verify"})
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('not in the control image: ' + name)
sys.meta_path.insert(0, Block())
import services.control.server, services.control.probe, services.control.submit
from services.control.app import create_app
from services.control.settings import ControlSettings
create_app(ControlSettings(redis_url='redis://127.0.0.1:1/0'))
from services.cli import build_parser
build_parser()
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
