"""End to end: a real run started through the API of a real control plane (uvicorn, local
launcher), with the real sampler (transformers backend) and learner on a tiny model.

One run serves the module (it costs the CPU time): while it trains, a real Prometheus scrapes the
three services and headless Chromium loads the dashboard; the last test stops it gracefully.
The run has two named evals (`task.evals`), so both show up in Prometheus and on the dashboard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.chromium import Browser, chromium_binary
from tests.helpers.control_server import ROOT, ControlServer, tiny_run_config
from tests.helpers.polling import wait_for
from tests.helpers.prometheus import Prometheus, prometheus_binary
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
# The docs' screenshot is refreshed only on request (DASHRL_UPDATE_DOCS_SCREENSHOT=1), so a test
# run leaves the tree clean.
DOCS_SCREENSHOT = ROOT / "docs/img/dashboard.png"
EVALS = [{"name": "held", "size": 4},
         {"name": "arith", "source": {"kind": "reasoning_gym", "name": "basic_arithmetic"}, "size": 3,
          "greedy": False, "samples": 2, "pass_at_k": [1, 2]}]


@dataclass
class Live:
    server: ControlServer
    api: httpx.Client
    run_id: str
    out: Path

    def view(self) -> dict:
        return self.api.get(f"/v1/runs/{self.run_id}").json()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_proc):
    work = tmp_path_factory.mktemp("e2e")
    model = build_tiny_model(work / "model")
    server = ControlServer(redis_proc.url, work, launcher="local").start()
    try:
        with server.client() as api:
            created = api.post("/v1/runs", json=tiny_run_config(work / "runs", model, task={"evals": EVALS}))
            assert created.status_code == 201, created.text
            yield Live(server, api, created.json()["id"], work / "runs")
    finally:
        server.stop()  # ends the services if a test failed before stopping the run


def _failure(live: Live) -> str:
    view = live.view()
    return f"state {view['state']}: {view.get('failure')}\n{live.server.log()[-2000:]}"


def test_run_reaches_running_and_its_version_rises(live):
    running = wait_for(lambda: live.view()["state"] != "pending" and live.view(), "state != pending", 120)
    assert running["state"] == "running", _failure(live)
    first = wait_for(lambda: live.view()["policy_version"] is not None and live.view(), "a policy version", 120)
    wait_for(lambda: (live.view()["policy_version"] or 0) >= first["policy_version"] + 2, "the version to rise", 120)
    view = live.view()
    assert view["state"] == "running", _failure(live)
    assert {s["service"] for s in view["services"]} == {"learner", "sampler"}
    assert view["learner_step"] >= 2 and view["tokens_per_s"]["learner"] > 0
    assert set(view["metrics_ports"]) == {"learner", "sampler-0"}


@pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed (scripts/ensure-system-deps.sh)")
def test_prometheus_scrapes_the_three_services(live, tmp_path):
    ports = live.view()["metrics_ports"]
    jobs = {"dashrl-control": [f"127.0.0.1:{live.server.port}"],
            "dashrl-sampler": [f"127.0.0.1:{ports['sampler-0']}"],
            "dashrl-learner": [f"127.0.0.1:{ports['learner']}"]}
    with Prometheus(tmp_path / "prometheus", jobs) as prom:
        up = wait_for(lambda: len([r for r in prom.query("up") if r["value"][1] == "1"]) == 3 and prom.query("up"),
                      "all three targets up", 60)
        assert {r["metric"]["job"] for r in up} == set(jobs)
        steps = wait_for(lambda: [r for r in prom.query("dashrl_learner_steps_total") if float(r["value"][1]) > 0],
                         "dashrl_learner_steps_total > 0", 60)
        assert steps[0]["metric"]["job"] == "dashrl-learner"
        assert wait_for(lambda: prom.query("sum(dashrl_sampler_tokens_total) > 0"), "sampler tokens", 60)
        assert prom.query('dashrl_control_runs{state="running"}')[0]["value"][1] == "1"
        evals = wait_for(lambda: {r["metric"]["eval"] for r in prom.query("dashrl_eval_accuracy")} == {"held", "arith"}
                         and prom.query("dashrl_eval_accuracy"), "both named evals scraped", 60)
        assert {(r["metric"]["eval"], r["metric"]["mode"]) for r in evals} == {
            ("held", "greedy"), ("held", "sampled"), ("arith", "sampled")}
        assert {r["metric"]["k"] for r in prom.query('dashrl_sampler_eval_pass_at_k{eval="arith"}')} == {"1", "2"}


@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (scripts/ensure-system-deps.sh)")
def test_dashboard_in_headless_chromium(live, tmp_path):
    wait_for(lambda: len(live.api.get(f"/v1/runs/{live.run_id}/series").json()["points"]) >= 8,
             "8 dashboard samples", 120)
    with Browser(width=1400, height=1000) as browser:
        browser.open(f"{live.server.url}/#run={live.run_id}")
        browser.wait_for("document.getElementById('state').textContent === 'running'", 30)
        browser.wait_for("document.querySelectorAll('#services tr').length === 2", 30)
        browser.wait_for("document.getElementById('s-step').textContent !== '-'", 30)
        assert browser.evaluate("document.getElementById('run-select').value") == live.run_id
        # the charts drew lines, not the empty-state text: some pixels differ from the background
        drawn = browser.evaluate("""[...document.querySelectorAll('canvas')].filter(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let blue = 0; for (let i = 0; i < d.length; i += 4) if (d[i+2] > 200 && d[i] < 80) blue++;
            return blue > 20; }).length""")
        assert drawn >= 5, f"only {drawn} charts have a line"
        # one line per named eval: the caption names both, and the second eval's (red) line is drawn
        browser.wait_for("document.getElementById('acc-caption').textContent === 'eval accuracy (held, arith)'", 60)
        red = browser.evaluate("""(() => { const c = document.querySelector('canvas[data-prefix]');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let red = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 80 && d[i+2] < 80) red++;
            return red; })()""")
        assert red > 20, f"the eval chart has no second line ({red} red pixels)"
        target = DOCS_SCREENSHOT if os.environ.get("DASHRL_UPDATE_DOCS_SCREENSHOT") else tmp_path / "dashboard.png"
        path = browser.screenshot(target)
        browser.pump(2.5)  # one more poll cycle, so its errors (if any) are seen
        assert browser.errors == []
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_stop_is_graceful(live):
    before = live.view()
    stop = live.api.post(f"/v1/runs/{live.run_id}/stop", json={"reason": "e2e test"})
    assert stop.status_code == 202 and stop.json()["state"] in ("stopping", "stopped")
    final = wait_for(lambda: live.view()["state"] in ("stopped", "failed", "finished") and live.view(),
                     "the run to stop", 120)
    assert final["state"] == "stopped", _failure(live)
    assert final["learner_step"] >= before["learner_step"] and final["stop_reason"] == "e2e test"
    folder = live.out / live.run_id
    assert (folder / "checkpoints" / f"step-{final['learner_step']}").is_dir()  # the final checkpoint
    assert (folder / "final" / "model.safetensors").is_file()
    assert (folder / "config.yaml").is_file() and (folder / "metrics.jsonl").is_file()
    assert all(s["state"] in ("finished", "stopped") for s in final["services"]), final["services"]
