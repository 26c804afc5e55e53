"""The learner service with experiment trackers on: TensorBoard receives every step; the MLflow
server it also logs to is killed mid-run, and the run still finishes, with the failures counted
on the learner's /metrics (`dashrl_learner_tracker_errors_total{tracker="mlflow"}`)."""

import re
import urllib.request

import pytest
import yaml

from services.learner.steplog import read_steps
from shared.runstate import RunState
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.polling import wait_for
from tests.helpers.mlflow_server import MlflowServer
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def scrape(log_path, name: str, labels: str) -> float:
    port = re.search(r"learner: metrics on port (\d+)", log_path.read_text()).group(1)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def logged_steps(url: str, run: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("dashrl")
    runs = client.search_runs([exp.experiment_id], f"tags.`dashrl.run_id` = '{run}'") if exp else []
    return sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "learner/loss")) if runs else []


def test_a_tracker_killed_mid_run_does_not_stop_the_learner(redis_proc, redis_client, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model_dir = build_tiny_model(tmp_path / "tiny")
    pol, run, texts = ScriptedPolicy(model_dir), "tracked", prompts(24)
    batches = [pol.batch(run, texts[4 * i: 4 * i + 4], first_group=4 * i) for i in range(6)]
    server = MlflowServer(tmp_path / "mlflow").start(timeout=300)
    try:
        cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                           learner={"max_steps": 6, "checkpoint_every": 2})
        data = yaml.safe_load(cfg.read_text())
        data["tracking"] = [{"kind": "tensorboard"},
                            {"kind": "mlflow", "tracking_uri": server.url, "http_timeout_s": 30, "http_retries": 0}]
        cfg.write_text(yaml.safe_dump(data))
        run_dir, log = tmp_path / "runs" / run, tmp_path / "learner.log"
        write_batches(redis_client, run, batches[:2])
        proc = start_learner(cfg, redis_proc.url, log)
        wait_for(lambda: len(read_steps(run_dir / "metrics.jsonl")) == 2, "step 2", 180, procs=proc, log=log)
        # The tracker opens on its own thread (importing mlflow alone takes seconds): kill the
        # server once it holds the run's first two steps, so steps 3 and 4 go to a dead server.
        wait_for(lambda: logged_steps(server.url, run) == [1, 2], "steps 1-2 in MLflow", 180, procs=proc, log=log)
        server.kill()
        write_batches(redis_client, run, batches[2:4])
        wait_for(lambda: len(read_steps(run_dir / "metrics.jsonl")) == 4, "step 4", 180, procs=proc, log=log)
        wait_for(lambda: scrape(log, "dashrl_learner_tracker_errors_total", 'reason="error",tracker="mlflow"') >= 2,
                 "the mlflow failures counted", 60, procs=proc, log=log)
        write_batches(redis_client, run, batches[4:])
        assert proc.wait(180) == 0, log.read_text()[-3000:]
    finally:
        server.kill()
    assert RunState(redis_client, run).learner_done() and (run_dir / "final" / "model.safetensors").exists()
    assert "tracker mlflow: log failed" in log.read_text()
    acc = EventAccumulator(str(run_dir / "tensorboard" / "learner"))
    acc.Reload()
    steps = read_steps(run_dir / "metrics.jsonl")
    assert [(e.step, round(e.value, 5)) for e in acc.Scalars("learner/loss")] == [
        (s["step"], round(s["loss"], 5)) for s in steps]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
