"""The control plane through real uvicorn and real HTTP, with run records in a real Redis.

These use the `workers` launcher: a POST publishes RunAssignments (checked here) instead of
starting services, and the services' side (heartbeats, learner done) is played through the same
`RunState` calls the services make. The end-to-end run with real services is test_control_e2e.py.
"""

import subprocess
import sys

import pytest

from shared.keys import ASSIGNMENTS, PAYLOAD_FIELD, RunKeys
from shared.protocol import RunAssignment, decode
from shared.runstate import RunState
from tests.helpers.control_server import ROOT, ControlServer
from tests.helpers.polling import wait_for

RUN_CONFIG = {"learner": {"max_steps": 3, "train_batch_size": 8, "micro_batch_size": 4},
              "sampler": {"backend": "transformers", "sampling_batch_prompts": 2, "group_size": 2, "num_shards": 2}}


@pytest.fixture
def control(redis_proc, redis_client, tmp_path):
    server = ControlServer(redis_proc.url, tmp_path).start()
    yield server
    server.stop()


def test_mutating_routes_need_the_token(control):
    with control.client(auth=False) as c:
        assert c.post("/v1/runs", json={}).status_code == 401
        bad = c.post("/v1/runs", json={}, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/runs/x/stop").status_code == 401
        assert c.get("/v1/runs").status_code == 200  # reads are open
        assert c.get("/v1/runs").json() == {"runs": []}


@pytest.mark.parametrize("config,field", [
    ({"learner": {"lr": -1}}, "learner.lr"),
    ({"learner": {"nonsense": 1}}, "learner.nonsense"),
    ({"learner": {"train_batch_size": 4, "micro_batch_size": 8}}, "learner.micro_batch_size"),
    ({"task": {"source": {"kind": "nope"}}}, "task.source"),
    ({"run_id": "bad id!"}, "run_id"),
])
def test_bad_config_is_422_naming_the_field(control, config, field):
    with control.client() as c:
        resp = c.post("/v1/runs", json=config)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]["field"] == field
    assert field in resp.json()["detail"]["message"]


def test_non_object_and_oversized_bodies(control):
    with control.client() as c:
        assert c.post("/v1/runs", json=[1, 2]).status_code == 422
        big = c.post("/v1/runs", content=b"{" + b" " * (2 << 20) + b"}", headers={"Content-Type": "application/json"})
        assert big.status_code == 413

        def chunks():
            for _ in range(40):
                yield b" " * 65536  # chunked upload: no Content-Length to refuse up front
        assert c.post("/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
        assert c.get("/healthz").status_code == 200


def assignments(r) -> list[RunAssignment]:
    return [decode(f[PAYLOAD_FIELD], expect=RunAssignment) for _id, f in r.xrange(ASSIGNMENTS)]


def test_run_lifecycle_survives_a_control_plane_restart(control, redis_client, redis_proc, tmp_path):
    with control.client() as c:
        created = c.post("/v1/runs", json={**RUN_CONFIG, "run_id": "life-1"})
        assert created.status_code == 201, created.text
        assert created.json() == {"id": "life-1", "state": "pending"}
        assert c.post("/v1/runs", json={**RUN_CONFIG, "run_id": "life-1"}).status_code == 409
        sent = assignments(redis_client)
        assert sorted((a.role, a.config["sampler"]["shard_index"]) for a in sent) == [
            ("learner", 0), ("sampler", 0), ("sampler", 1)]
        assert all(a.run_id == "life-1" and a.config["learner"]["max_steps"] == 3 for a in sent)

        got = c.get("/v1/runs/life-1").json()
        assert got["state"] == "pending" and got["config"]["learner"]["max_steps"] == 3 and got["max_steps"] == 3

        rs = RunState(redis_client, "life-1")  # what the services do
        rs.heartbeat("learner", "l0", "running", {"step": 2, "policy_version": 2, "tokens_per_s": 50.0})
        rs.heartbeat("sampler", "s0", "running", {"policy_version": 1, "tokens_per_s": 900.0, "reward_mean": 0.5,
                                                  "eval_accuracy": 0.25, "eval_accuracy:math500": 0.25,
                                                  "eval_accuracy:gsm8k": 0.5})
        got = c.get("/v1/runs/life-1").json()
        assert got["state"] == "running" and got["policy_version"] == 2 and got["learner_step"] == 2
        assert got["tokens_per_s"] == {"sampler": 900.0, "learner": 50.0} and got["reward_mean"] == 0.5
        assert got["eval_accuracy"] == 0.25 and got["evals"] == {"math500": 0.25, "gsm8k": 0.5}
        assert {s["service"] for s in got["services"]} == {"learner", "sampler"}
        assert got["started_at"] is not None

        points = wait_for(lambda: c.get("/v1/runs/life-1/series").json()["points"], "a dashboard sample")
        assert points[-1]["policy_version"] == 2.0 and points[-1]["t"] > 0
        assert (points[-1]["eval_accuracy:math500"], points[-1]["eval_accuracy:gsm8k"]) == (0.25, 0.5)  # one line each

        stop = c.post("/v1/runs/life-1/stop", json={"reason": "test"})
        assert stop.status_code == 202 and stop.json()["state"] == "stopping"
        assert rs.stop_requested() and rs.should_stop()

    control.stop()  # the control plane goes away mid-stop ...
    rs.mark_learner_done()  # ... the learner checkpoints and finishes meanwhile, and both say goodbye
    rs.heartbeat("learner", "l0", "finished", {"step": 3, "policy_version": 3})
    rs.heartbeat("sampler", "s0", "stopped", {"policy_version": 3})
    with ControlServer(redis_proc.url, tmp_path) as again, again.client() as c:
        runs = c.get("/v1/runs").json()["runs"]
        assert [r["id"] for r in runs] == ["life-1"]
        got = c.get("/v1/runs/life-1").json()
        assert got["state"] == "stopped" and got["stop_reason"] == "test" and got["ended_at"] is not None
        assert c.post("/v1/runs/life-1/stop").json()["state"] == "stopped"  # idempotent
        assert c.get("/v1/runs/nope").status_code == 404
        assert c.get("/v1/runs/bad%20id").status_code == 422


def test_health_docs_metrics_and_dashboard(control):
    with control.client(auth=False) as c:
        assert c.get("/readyz").json() == {"status": "ok", "redis": "ok"}
        assert "/v1/runs/{run_id}/stop" in c.get("/openapi.json").json()["paths"]
        assert "swagger" in c.get("/docs").text.lower()
        page = c.get("/")
        assert page.status_code == 200 and "<canvas" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset in ("app.js", "chart.js", "style.css"):
            assert c.get(f"/static/{asset}").status_code == 200
        c.get("/v1/runs")
        text = c.get("/metrics").text
        assert 'dashrl_control_http_requests_total{method="GET",route="/v1/runs",status="200"}' in text
        assert 'dashrl_control_runs{state="pending"}' in text


def test_readyz_reports_redis_down(fresh_redis, tmp_path):
    with ControlServer(fresh_redis.url, tmp_path) as server, server.client() as c:
        assert c.get("/readyz").status_code == 200
        fresh_redis.stop(kill=True)
        down = c.get("/readyz")
        assert down.status_code == 503 and down.json()["status"] == "unavailable"
        assert c.get("/healthz").status_code == 200
        fresh_redis.start()
        wait_for(lambda: c.get("/readyz").status_code == 200, "readyz after Redis came back", 20)


def test_refuses_public_bind_without_token(redis_proc, tmp_path):
    server = ControlServer(redis_proc.url, tmp_path, token=None)
    env = {**server.env, "DASHRL_CONTROL_HOST": "0.0.0.0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "services.cli", "control"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "DASHRL_API_TOKEN" in out.stderr


def test_loopback_without_token_allows_mutations(redis_proc, redis_client, tmp_path):
    with ControlServer(redis_proc.url, tmp_path, token=None) as server, server.client() as c:
        assert c.post("/v1/runs", json={"run_id": "open-1"}).status_code == 201
    assert [a.run_id for a in assignments(redis_client)] == ["open-1", "open-1"]
