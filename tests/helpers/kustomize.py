"""Build a kustomize directory into manifests with the machine's kubectl (offline: `kubectl
kustomize` needs no cluster), or the one scripts/ensure-deploy-tools.sh put under .tools/bin."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.compose_file import ROOT

K8S = ROOT / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())


def kubectl() -> str:
    found = shutil.which("kubectl") or str(ROOT / ".tools/bin/kubectl")
    if not Path(found).is_file():
        if os.environ.get("CI"):
            pytest.fail("kubectl not found: scripts/ensure-deploy-tools.sh installs it")
        pytest.skip("kubectl not found (scripts/ensure-deploy-tools.sh installs it)")
    return found


def build(directory: Path) -> list[dict]:
    """`kubectl kustomize DIR` parsed into its documents."""
    out = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kustomize {directory}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def containers(doc: dict) -> list[dict]:
    """Every container and init container of a workload (Deployment, StatefulSet, Job)."""
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))
