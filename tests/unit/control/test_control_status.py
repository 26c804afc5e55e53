"""The run state machine and the API view derived from heartbeats (pure)."""

import json

import pytest

from services.control.status import TERMINAL, derive_state, series_field, series_point, summarize
from shared.protocol import Heartbeat, LearnerReport, SamplerReport


def hb(service, instance, sent_at, state="running", **numbers):
    report = {"learner": LearnerReport, "sampler": SamplerReport}[service](**numbers)
    return Heartbeat("r1", instance, state, sent_at, report)


LIVE = [hb("learner", "l", 99.0), hb("sampler", "s", 99.0)]
LEFT = [hb("learner", "l", 99.0, "finished"), hb("sampler", "s", 99.0, "stopped")]
WINDING = [hb("learner", "l", 99.0, "finished"), hb("sampler", "s", 99.0, "running")]
SILENT = [hb("learner", "l", 99.0, "finished"), hb("sampler", "s", 10.0, "running")]  # 90 s without a beat


@pytest.mark.parametrize("current,fields,beats,expected", [
    ("pending", {}, [], "pending"),
    ("pending", {}, LIVE, "running"),
    ("running", {}, [], "running"),  # heartbeats hash cleared: a run does not go back to pending
    ("running", {"stop_requested": "1"}, LIVE, "stopping"),
    ("stopping", {"stop_requested": "1", "learner_done": "1"}, WINDING, "stopping"),  # sampler still up
    ("stopping", {"stop_requested": "1", "learner_done": "1"}, LEFT, "stopped"),
    ("stopping", {"stop_requested": "1", "learner_done": "1"}, SILENT, "stopped"),
    ("running", {"learner_done": "1"}, WINDING, "stopping"),
    ("running", {"learner_done": "1"}, LEFT, "finished"),
    ("running", {"learner_done": "1", "services_exited": "1"}, WINDING, "finished"),  # launcher saw them exit
    ("running", {"failed_service": "sampler"}, LIVE, "failed"),
    ("pending", {"stop_requested": "1"}, [], "stopped"),  # nothing ever ran
    ("stopping", {"stop_requested": "1"}, [], "stopping"),
])
def test_derive_state(current, fields, beats, expected):
    assert derive_state(current, fields, beats, now=100.0) == expected


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_states_stick(terminal):
    assert derive_state(terminal, {"failed_service": "learner", "learner_done": "1"}, LIVE, 100.0) == terminal




def test_summarize_combines_learner_and_samplers():
    fields = {"state": "running", "created_at": "100.0", "config": json.dumps({"learner": {"max_steps": 50}}),
              "metrics_ports": json.dumps({"learner": 9001, "sampler-0": 9002})}
    beats = [
        hb("learner", "l0", 195.0, step=7, policy_version=7, tokens_per_s=300.0, staleness=0.5),
        hb("sampler", "s0", 199.0, policy_version=6, tokens_per_s=1000.0, reward_mean=0.2, kept_fraction=0.5,
           eval_accuracy=0.25),
        hb("sampler", "s1", 160.0, policy_version=7, tokens_per_s=500.0, reward_mean=0.4, kept_fraction=0.7),
    ]
    view = summarize("r1", "running", fields, beats, queue_depth=3, now=200.0)
    assert view.policy_version == 7 and view.learner_step == 7 and view.max_steps == 50
    assert view.tokens_per_s.sampler == 1500.0 and view.tokens_per_s.learner == 300.0
    assert view.reward_mean == pytest.approx(0.3) and view.kept_fraction == pytest.approx(0.6)
    assert view.eval_accuracy == 0.25 and view.staleness == 0.5 and view.queue_depth == 3
    assert view.metrics_ports == {"learner": 9001, "sampler-0": 9002}
    ages = {s.instance_id: (s.age_s, s.stale) for s in view.services}
    assert ages == {"l0": (5.0, False), "s0": (1.0, False), "s1": (40.0, True)}
    info = {s.instance_id: s.info for s in view.services}  # each report's numbers, by field name
    assert info["l0"] == {"policy_version": 7.0, "step": 7.0, "samples": 0.0, "tokens_per_s": 300.0, "staleness": 0.5}
    assert info["s0"]["eval_accuracy"] == 0.25 and "weight_sync_s" not in info["s0"]  # not known: left out
    assert view.failure is None
    point = series_point(view)
    assert point["sampler_tokens_per_s"] == 1500.0 and point["queue_depth"] == 3.0 and "learner_step" in point


def test_summarize_failure_and_no_heartbeats():
    fields = {"state": "failed", "failed_service": "learner", "exit_code": "3", "log_tail": "Traceback ..."}
    view = summarize("r2", "failed", fields, [], queue_depth=None, now=0.0)
    assert view.failure.service == "learner" and view.failure.exit_code == 3
    assert view.failure.log_tail == "Traceback ..."
    assert view.policy_version is None and view.tokens_per_s.sampler is None
    assert series_point(view) == {}


def test_staleness_falls_back_to_sampler_lag():
    beats = [hb("learner", "l0", 10.0, step=5, policy_version=5),
             hb("sampler", "s0", 10.0, policy_version=3), hb("sampler", "s1", 10.0, policy_version=5)]
    assert summarize("r", "running", {}, beats, None, 10.0).staleness == 2.0
    assert summarize("r", "running", {}, beats[1:], None, 10.0).staleness is None


def test_named_evals_reach_the_view_and_the_chart_samples():
    beats = [hb("sampler", "s0", 10.0, policy_version=4, eval_accuracy=0.3, evals={"math500": 0.3, "gsm8k": 0.45}),
             hb("sampler", "s1", 10.0, policy_version=4)]  # shard 1 does not evaluate
    view = summarize("r", "running", {}, beats, None, 10.0)
    assert view.eval_accuracy == 0.3 and view.evals == {"math500": 0.3, "gsm8k": 0.45}
    assert list(view.evals) == ["math500", "gsm8k"]  # config order: the first is the headline
    point = series_point(view)
    assert point["eval_accuracy"] == 0.3
    assert (point["eval_accuracy:math500"], point["eval_accuracy:gsm8k"]) == (0.3, 0.45)
    assert series_field("eval_accuracy:gsm8k") and series_field("reward_mean") and not series_field("bogus")
    assert summarize("r", "running", {}, beats[1:], None, 10.0).evals == {}
    assert view.services[0].info["eval_accuracy:gsm8k"] == 0.45  # the status API's flat numbers


def test_samples_come_from_the_learner_else_the_samplers():
    samplers = [hb("sampler", "s0", 1.0, samples=40), hb("sampler", "s1", 1.0, samples=24)]
    assert summarize("r", "running", {}, samplers, None, 1.0).samples == 64  # summed over shards
    learner = hb("learner", "l0", 1.0, step=2, samples=32)
    assert summarize("r", "running", {}, [learner, *samplers], None, 1.0).samples == 32
    before_first_step = [hb("learner", "l0", 1.0), *samplers]  # the learner has trained none yet
    assert summarize("r", "running", {}, before_first_step, None, 1.0).samples == 64
