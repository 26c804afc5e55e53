"""Security of the control plane through real uvicorn: every mutating route (enumerated from the
app itself, not a hand list) needs the bearer token and refuses oversized bodies; a SIGKILLed
control plane comes back with its runs; the dashboard shows hostile text as text (headless
Chromium renders a run whose service names, states and failure log carry markup and script)."""

import signal

import pytest
from fastapi.routing import APIRoute

from services.control.app import create_app
from services.control.deps import require_token
from services.control.runs_store import RunsStore
from services.control.settings import ControlSettings
from shared.runstate import RunState
from tests.helpers.chromium import Browser, chromium_binary
from tests.helpers.control_server import TOKEN, ControlServer
from tests.helpers.polling import wait_for

RUN_CONFIG = {"learner": {"max_steps": 3, "train_batch_size": 8, "micro_batch_size": 4},
              "sampler": {"backend": "transformers", "sampling_batch_prompts": 2, "group_size": 2}}
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;"\'</td>'


def _mutating_routes(redis_client) -> list[tuple[str, str, APIRoute]]:
    app = create_app(ControlSettings(redis_url="redis://unused", api_token=TOKEN, launcher="workers"), r=redis_client)
    out = []
    for route in app.routes:
        methods = set(getattr(route, "methods", None) or ()) - {"GET", "HEAD", "OPTIONS"}
        out += [(m, route.path, route) for m in sorted(methods)]
    return out


@pytest.fixture
def control(redis_proc, redis_client, tmp_path):
    server = ControlServer(redis_proc.url, tmp_path).start()
    yield server
    server.stop()


def test_every_mutating_route_needs_the_token_and_limits_its_body(control, redis_client):
    routes = _mutating_routes(redis_client)
    assert {(m, p) for m, p, _ in routes} >= {("POST", "/v1/runs"), ("POST", "/v1/runs/{run_id}/stop")}
    with control.client(auth=False) as c:
        assert c.post("/v1/runs", json={**RUN_CONFIG, "run_id": "sec-1"},
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 201
        for method, path, route in routes:
            assert isinstance(route, APIRoute), f"{method} {path} is not an API route"
            deps = {d.call for d in route.dependant.dependencies}
            assert require_token in deps, f"{method} {path} does not depend on require_token"
            url = path.replace("{run_id}", "sec-1")
            wrong = "x" * len(TOKEN)  # same length: only the comparison can refuse it
            for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": TOKEN}):
                resp = c.request(method, url, json={}, headers=headers)
                assert resp.status_code == 401, (method, path, headers, resp.text)
            big = c.request(method, url, content=b"{" + b" " * (2 << 20) + b"}",
                            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            assert big.status_code == 413, (method, path)
    assert RunState(redis_client, "sec-1").stop_requested() is False  # nothing got through


def test_sigkilled_control_plane_restarts_with_its_runs(redis_proc, redis_client, tmp_path):
    server = ControlServer(redis_proc.url, tmp_path).start()
    with server.client() as c:
        assert c.post("/v1/runs", json={**RUN_CONFIG, "run_id": "kill-1"}).status_code == 201
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    RunState(redis_client, "kill-1").heartbeat("learner", "l0", "running", {"step": 1, "policy_version": 1})
    with ControlServer(redis_proc.url, tmp_path) as again, again.client() as c:
        got = c.get("/v1/runs/kill-1").json()
        assert got["state"] == "running" and got["policy_version"] == 1
        assert c.post("/v1/runs/kill-1/stop", json={"reason": "after kill"}).status_code == 202
        assert RunState(redis_client, "kill-1").stop_requested()


@pytest.mark.slow
@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (scripts/ensure-system-deps.sh)")
def test_dashboard_escapes_hostile_text(control, redis_client):
    with control.client() as c:
        assert c.post("/v1/runs", json={**RUN_CONFIG, "run_id": "xss-1"}).status_code == 201
    rs = RunState(redis_client, "xss-1")
    rs.heartbeat("learner", HOSTILE, HOSTILE, {"step": 1})
    assert RunsStore(redis_client).record_failure("xss-1", HOSTILE, 1, "log line\n" + HOSTILE)
    with control.client() as c:
        assert wait_for(lambda: c.get("/v1/runs/xss-1").json()["state"] == "failed", "failed state")
    with Browser() as browser:
        browser.open(f"{control.url}/#run=xss-1")
        browser.wait_for("document.getElementById('failure-log').textContent.length > 0", 30)
        browser.wait_for("document.querySelectorAll('#services tr').length === 1", 30)
        browser.pump(1.0)
        assert browser.evaluate("document.getElementById('failure-log').textContent") == "log line\n" + HOSTILE
        assert HOSTILE in browser.evaluate("document.getElementById('failure-what').textContent")
        cells = browser.evaluate("[...document.querySelectorAll('#services td')].map(td => td.textContent)")
        assert cells[1] == HOSTILE and cells[2] == HOSTILE
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        assert browser.evaluate("document.querySelectorAll('img').length") == 0  # the page itself has none
        assert browser.evaluate("[...document.scripts].every(s => s.src.includes('/static/'))")
