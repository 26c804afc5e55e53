"""Experiment tracking against the real clients: TensorBoard's reader, a real `mlflow server`
(MlflowClient), W&B offline mode (its .wandb log decoded with wandb's protobufs); a tracker that
fails never raises into the caller and is counted."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from shared.config import RunConfig
from shared.tracking import Tracking, numeric
from shared.tracking.worker import TrackerWorker
from shared.tracking_config import MlflowTracker, TensorBoardTracker, WandbTracker
from tests.helpers.mlflow_server import MlflowServer
from tests.helpers.wandb_offline import config as wandb_config, history, records

CONFIG = {"learner": {"lr": 0.001, "max_steps": 3}, "run_id": "r1"}


def counter() -> tuple[Counter, CollectorRegistry]:
    reg = CollectorRegistry()
    return Counter("dashrl_test_tracker_errors_total", "t", ["tracker", "reason"], registry=reg), reg


def count_with(c: Counter):
    return lambda kind, reason: c.labels(tracker=kind, reason=reason).inc()


def log_three_steps(t: Tracking) -> None:
    for step in (1, 2, 3):
        t.log(numeric({"step": step, "loss": 1.0 / step, "seconds": {"wait": 0.5}, "ids": ["a"]}, "learner/",
                      skip=("step",)), step, "learner/step")
    t.log({"eval/held_out/greedy_accuracy": 0.25}, 2, "eval/policy_version")


def test_numeric_keeps_finite_numbers_and_flattens_dicts():
    rec = {"a": 1, "b": float("nan"), "c": None, "d": True, "e": {"f": 2.5}, "g": [1], "h": "x"}
    assert numeric(rec, "p/") == {"p/a": 1.0, "p/e/f": 2.5}


def test_tensorboard_scalars_read_back_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = Tracking.start([TensorBoardTracker(log_dir=str(tmp_path / "tb"))], CONFIG, tmp_path, "r1", "learner")
    log_three_steps(t)
    t.close()
    acc = EventAccumulator(str(tmp_path / "tb" / "learner"))
    acc.Reload()
    loss = [(e.step, round(e.value, 4)) for e in acc.Scalars("learner/loss")]
    assert loss == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert [e.step for e in acc.Scalars("eval/held_out/greedy_accuracy")] == [2]
    assert "learner/seconds/wait" in acc.Tags()["scalars"]


@pytest.mark.process
def test_wandb_offline_run_folder_holds_history_config_and_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # and no network: nothing leaves the machine
    model = tmp_path / "final"
    model.mkdir()
    (model / "config.json").write_text("{}")
    c, _ = counter()
    t = Tracking.start([WandbTracker(mode="offline", dir=str(tmp_path / "wb"))], CONFIG, tmp_path, "r1", "learner",
                       count_with(c))
    log_three_steps(t)
    t.artifact(model)
    t.close()
    assert t.workers == [] and c._metrics == {}  # no errors counted
    [log_file] = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    # wandb-core (its own process) may still be writing the log when finish() returns: wait
    # for the run's exit record, the last one it writes
    deadline = time.monotonic() + 60
    while "exit" not in [r.WhichOneof("record_type") for r in records(log_file)] and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = history(log_file)
    steps = [(r["learner/step"], r["learner/loss"]) for r in rows if "learner/loss" in r]
    assert steps == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))], (
        log_file.stat().st_size, [r.WhichOneof("record_type") for r in records(log_file)], rows)
    assert [r["eval/held_out/greedy_accuracy"] for r in rows if "eval/policy_version" in r] == [0.25]
    assert wandb_config(log_file)["learner"]["lr"] == 0.001
    assert "artifact" in [r.WhichOneof("record_type") for r in records(log_file)]
    wandb_cli = Path(sys.executable).parent / "wandb"  # the folder is what `wandb sync` uploads later
    dry = subprocess.run([str(wandb_cli), "sync", "--dry-run", str(log_file.parent)], capture_output=True, text=True,
                         timeout=120)
    assert "Would sync 1 run(s)" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    # One server for the module (it takes 1-2 min to start on the 2-core box); the kill test,
    # last in this file, ends it.
    with MlflowServer(tmp_path_factory.mktemp("mlflow")).start(timeout=300) as server:
        yield server


@pytest.mark.process
@pytest.mark.slow
def test_mlflow_server_receives_run_params_metrics_and_model(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    model = tmp_path / "final"
    model.mkdir()
    (model / "config.json").write_text("{}")
    server = mlflow_server
    t = Tracking.start([MlflowTracker(tracking_uri=server.url, experiment="exp")], CONFIG, tmp_path, "r1", "learner")
    log_three_steps(t)
    t.artifact(model)
    t.close()
    client = MlflowClient(server.url)
    [run] = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.run_name == "r1/learner" and run.info.status == "FINISHED"
    assert run.data.tags["dashrl.run_id"] == "r1"
    assert run.data.params["learner.lr"] == "0.001" and run.data.params["learner.max_steps"] == "3"
    hist = client.get_metric_history(run.info.run_id, "learner/loss")
    assert sorted((m.step, round(m.value, 4)) for m in hist) == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert [f.path for f in client.list_artifacts(run.info.run_id, "final-model")] == ["final-model/config.json"]


@pytest.mark.process
@pytest.mark.slow
def test_mlflow_server_killed_mid_run_is_counted_and_never_raises(tmp_path, mlflow_server):
    c, reg = counter()
    server = mlflow_server
    t = Tracking.start([MlflowTracker(tracking_uri=server.url, http_timeout_s=2, http_retries=0, close_timeout_s=60)],
                       CONFIG, tmp_path, "r1", "learner", count_with(c))
    t.log({"learner/loss": 1.0}, 1, "learner/step")
    worker = t.workers[0]
    deadline = time.monotonic() + 60
    while not (worker.opened and worker._queue.empty()) and time.monotonic() < deadline:
        time.sleep(0.1)
    server.kill()
    start = time.monotonic()
    for step in range(2, 12):
        t.log({"learner/loss": 1.0 / step}, step, "learner/step")  # never blocks, never raises
    assert time.monotonic() - start < 0.5
    t.close()
    assert time.monotonic() - start < 60  # bounded: no minutes of HTTP retries
    errors = reg.get_sample_value("dashrl_test_tracker_errors_total", {"tracker": "mlflow", "reason": "error"})
    assert errors >= 10  # each failed log_batch, and the final set_terminated
    assert reg.get_sample_value("dashrl_test_tracker_errors_total", {"tracker": "mlflow", "reason": "dropped"}) is None


class Flaky:
    kind = "flaky"

    def __init__(self, gate=None) -> None:
        self.seen, self.gate = [], gate

    def open(self) -> None:
        pass

    def log(self, metrics, step, axis) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        if step % 2:
            raise ConnectionError("server away")
        self.seen.append(step)

    def close(self) -> None:
        pass


def test_worker_counts_errors_and_drops_on_a_full_queue_without_blocking():
    import threading

    c, reg = counter()
    gate = threading.Event()
    w = TrackerWorker(Flaky(gate), queue_size=2, close_timeout_s=10, count=count_with(c))
    start = time.monotonic()
    for step in range(1, 11):
        w.submit("log", {"x": 1.0}, step, "s")
    assert time.monotonic() - start < 0.5  # the caller never waits on a stuck tracker
    gate.set()
    assert w.close()
    dropped = reg.get_sample_value("dashrl_test_tracker_errors_total", {"tracker": "flaky", "reason": "dropped"})
    errors = reg.get_sample_value("dashrl_test_tracker_errors_total", {"tracker": "flaky", "reason": "error"})
    assert dropped >= 7 and dropped + errors + len(w.backend.seen) == 10 and errors >= 1


class OpensOnSecondTry(Flaky):
    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    def open(self) -> None:
        self.tries += 1
        if self.tries == 1:
            raise ConnectionError("server not up yet")


def test_a_tracker_that_failed_to_open_is_tried_again(monkeypatch):
    import shared.tracking.worker as worker

    monkeypatch.setattr(worker, "REOPEN_S", 0.0)
    c, reg = counter()
    w = TrackerWorker(OpensOnSecondTry(), queue_size=100, close_timeout_s=10, count=count_with(c))
    for step in (2, 4):
        w.submit("log", {"x": 1.0}, step, "s")
    assert w.close() and w.backend.tries == 2 and w.backend.seen == [2, 4]
    assert reg.get_sample_value("dashrl_test_tracker_errors_total", {"tracker": "flaky", "reason": "error"}) == 1


def test_run_config_takes_several_trackers_and_rejects_unknown_keys():
    cfg = RunConfig.model_validate({"tracking": [{"kind": "tensorboard"}, {"kind": "mlflow", "tracking_uri": "http://x:5000"},
                                                 {"kind": "wandb", "mode": "offline"}]})
    assert [t.kind for t in cfg.tracking] == ["tensorboard", "mlflow", "wandb"]
    with pytest.raises(ValueError, match="tracking"):
        RunConfig.model_validate({"tracking": [{"kind": "comet"}]})
    with pytest.raises(ValueError, match="uri"):
        RunConfig.model_validate({"tracking": [{"kind": "mlflow", "uri": "x"}]})
