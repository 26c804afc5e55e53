"""The compose stack's Grafana dashboard and Prometheus config: parseable, and every metric a
panel queries is one that shared/metrics.py defines (a renamed metric fails here, not in Grafana)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from shared.metrics import control_metrics, learner_metrics, sampler_metrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy/grafana/dashboards/dashrl.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
REQUIRED = ["dashrl_sampler_tokens_total", "dashrl_sampler_samples_total", "dashrl_learner_steps_total",
            "dashrl_learner_tokens_total", "dashrl_policy_version", "dashrl_rollout_staleness_versions_bucket",
            "dashrl_stream_pending_entries", "dashrl_weight_sync_seconds_bucket", "dashrl_reward_mean",
            "dashrl_eval_accuracy"]


def exported_names() -> set[str]:
    names = set()
    for build in (sampler_metrics, learner_metrics, control_metrics):
        reg = CollectorRegistry()
        build(reg)
        for metric in reg.collect():
            names.update(metric.name + s for s in SUFFIXES.get(metric.type, ("",)))
    return names


def test_dashboard_queries_only_defined_metrics():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bdashrl_[a-z_]+", e)}
    assert used, "no dashrl metric in the dashboard"
    assert used <= exported_names(), f"undefined metrics: {sorted(used - exported_names())}"
    assert set(REQUIRED) <= used  # every metric the issue names has a panel
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert all(p["datasource"]["uid"] == "dashrl-prometheus" for p in dash["panels"])


def test_grafana_provisioning_matches_dashboard():
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["uid"] == "dashrl-prometheus"
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashrl.yml").read_text())
    assert prov["providers"][0]["type"] == "file"


def test_prometheus_config_scrapes_three_services():
    cfg = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {j["job_name"] for j in cfg["scrape_configs"]}
    assert jobs == {"dashrl-control", "dashrl-sampler", "dashrl-learner"}


@pytest.mark.process
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_config():
    out = subprocess.run(["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
