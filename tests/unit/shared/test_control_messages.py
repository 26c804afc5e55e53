"""shared/control_messages.py: heartbeats with typed reports (round trip, rejection of bad
fields) and the category of every ProtocolError `decode` raises."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from shared import protocol
from shared.protocol import (
    SCHEMA_VERSION, ErrorCategory, Heartbeat, LearnerReport, ProtocolError, RolloutBatch, SamplerReport,
    StopRun, decode, encode,
)

SAMPLER = SamplerReport(policy_version=4, calls=9, samples=288, samples_kept=200, batches=9, tokens_per_s=812.5,
                        reward_mean=0.25, kept_fraction=0.69, completion_len_mean=120.0, truncated_fraction=0.0,
                        weight_sync_s=0.4, eval_accuracy=0.5, eval_accuracy_sampled=0.375, eval_version=4,
                        evals={"math500": 0.5, "gsm8k": 0.625})
LEARNER = LearnerReport(policy_version=7, step=7, samples=224, loss=-0.01, grad_norm=0.8, tokens_per_s=3000.0,
                        adv_abs_mean=0.4, staleness=0.5, kept_fraction=0.7, reward_mean=0.3)


def heartbeat_body(report=SAMPLER, **report_changes) -> dict:
    body = msgpack.unpackb(encode(Heartbeat("r", "i0", "running", 5.0, report)), raw=False)
    body["report"].update(report_changes)
    return body


def packed(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


@pytest.mark.parametrize("report", [SAMPLER, LEARNER, SamplerReport(), LearnerReport(),
                                    SamplerReport(stalled={"generate": 301.5})])
def test_heartbeat_round_trip_keeps_the_report_and_its_type(report):
    back = decode(encode(Heartbeat("run", "host-1-shard0", "running", 12.5, report)), expect=Heartbeat)
    assert back.report == report and type(back.report) is type(report)
    assert back.service == report.SERVICE and (back.instance_id, back.state, back.sent_at) == ("host-1-shard0",
                                                                                                "running", 12.5)


def test_every_report_field_is_on_the_wire_unknown_ones_as_nil():
    body = heartbeat_body(SamplerReport(policy_version=1))
    assert body["service"] == "sampler" and body["schema_version"] == SCHEMA_VERSION == 4
    assert body["report"]["tokens_per_s"] is None and body["report"]["evals"] == {}
    assert set(body["report"]) == {f.name for f in dataclasses.fields(SamplerReport)}


def test_a_non_finite_number_is_sent_as_not_known():
    """A diverged loss must not make the learner's whole heartbeat unreadable."""
    sent = LearnerReport(step=3, loss=float("nan"), grad_norm=float("inf"), reward_mean=0.5)
    back = decode(encode(Heartbeat("r", "l0", "training", 1.0, sent))).report
    assert (back.step, back.loss, back.grad_norm, back.reward_mean) == (3, None, None, 0.5)
    evals = decode(encode(Heartbeat("r", "s0", "running", 1.0, SamplerReport(evals={"a": float("nan"), "b": 1.0}))))
    assert evals.report.evals == {"b": 1.0}


def test_numbers_flatten_the_report_for_trackers_and_the_status_api():
    assert SAMPLER.numbers()["eval_accuracy:gsm8k"] == 0.625 and SAMPLER.numbers()["calls"] == 9.0
    assert "evals" not in SAMPLER.numbers()
    assert SamplerReport(stalled={"generate": 3.0}).numbers()["stalled_generate_s"] == 3.0
    assert LearnerReport(step=2).numbers() == {"policy_version": 0.0, "step": 2.0, "samples": 0.0}


@pytest.mark.parametrize("report, changes, match", [
    (SAMPLER, {"policy_version": -1}, r"heartbeat.report\(sampler\).policy_version: must be >= 0"),
    (SAMPLER, {"samples": 2.5}, r"samples: expected an integer, got float"),
    (SAMPLER, {"eval_version": "4"}, r"eval_version: expected an integer, got str"),
    (SAMPLER, {"tokens_per_s": float("nan")}, r"tokens_per_s: expected a finite number"),
    (SAMPLER, {"reward_mean": "high"}, r"reward_mean: expected a finite number"),
    (SAMPLER, {"evals": {"math500": float("inf")}}, r"evals: expected at most 256 finite numbers"),
    (SAMPLER, {"evals": [0.5]}, r"evals: expected a map"),
    (SAMPLER, {"samples_total": 3}, r"heartbeat.report\(sampler\): unknown fields \['samples_total'\]"),
    (LEARNER, {"eval_accuracy": 0.5}, r"heartbeat.report\(learner\): unknown fields \['eval_accuracy'\]"),
    (LEARNER, {"step": True}, r"step: expected an integer, got bool"),
])
def test_bad_report_fields_are_refused_naming_the_field(report, changes, match):
    with pytest.raises(ProtocolError, match=match) as err:
        decode(packed(heartbeat_body(report, **changes)))
    assert err.value.category is ErrorCategory.INVALID


def test_a_missing_report_field_is_refused():
    body = heartbeat_body(LEARNER)
    del body["report"]["staleness"]
    with pytest.raises(ProtocolError, match=r"heartbeat.report\(learner\).staleness: missing"):
        decode(packed(body))


@pytest.mark.parametrize("changes, match", [
    ({"service": "trainer"}, r"heartbeat.service: unknown service 'trainer' \(known: \['learner', 'sampler'\]\)"),
    ({"report": [1, 2]}, r"heartbeat.report: expected a map"),
    ({"info": {"step": 1.0}}, r"heartbeat: unknown fields \['info'\]"),  # schema 2's map of numbers
])
def test_bad_heartbeats_are_refused(changes, match):
    with pytest.raises(ProtocolError, match=match):
        decode(packed({**heartbeat_body(), **changes}))


def test_a_schema_2_heartbeat_is_refused_by_version():
    old = {"kind": "heartbeat", "schema_version": 2, "run_id": "r", "service": "learner", "instance_id": "l0",
           "state": "running", "sent_at": 1.0, "info": {"step": 1.0}}
    with pytest.raises(ProtocolError, match="schema_version 2 not supported") as err:
        decode(packed(old))
    assert err.value.category is ErrorCategory.SCHEMA_VERSION


# ------------------------------------------------------------------ categories of ProtocolError

GOOD = encode(StopRun("r", "x"))


def with_envelope(**changes) -> bytes:
    return packed({**msgpack.unpackb(GOOD, raw=False), **changes})


@pytest.mark.parametrize("data, expect, category", [
    ("not bytes", None, ErrorCategory.UNDECODABLE),
    (b"\xc1", None, ErrorCategory.UNDECODABLE),  # never valid msgpack
    (msgpack.packb([1, 2]), None, ErrorCategory.UNDECODABLE),  # msgpack, not a map
    (with_envelope(kind="pickle"), None, ErrorCategory.WRONG_KIND),
    (GOOD, RolloutBatch, ErrorCategory.WRONG_KIND),
    (with_envelope(schema_version=SCHEMA_VERSION - 1), None, ErrorCategory.SCHEMA_VERSION),
    (with_envelope(schema_version="3"), None, ErrorCategory.SCHEMA_VERSION),
    (packed({k: v for k, v in msgpack.unpackb(GOOD, raw=False).items() if k != "schema_version"}), None,
     ErrorCategory.SCHEMA_VERSION),
    (with_envelope(kind=7), None, ErrorCategory.INVALID),
    (with_envelope(reason=3), None, ErrorCategory.INVALID),
    (with_envelope(extra=1), None, ErrorCategory.INVALID),
])
def test_each_refusal_has_its_category(data, expect, category):
    with pytest.raises(ProtocolError) as err:
        decode(data, expect=expect)
    assert err.value.category is category


def test_an_oversized_message_is_invalid(monkeypatch):
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 10)
    with pytest.raises(ProtocolError, match="exceeds limit 10") as err:
        decode(GOOD)
    assert err.value.category is ErrorCategory.INVALID


def test_categories_are_the_dead_letter_labels():
    assert {c.value for c in ErrorCategory} == {"undecodable", "wrong_kind", "schema_version", "invalid",
                                                "missing_field", "deleted"}
    assert ProtocolError("x").category is ErrorCategory.INVALID  # the default: a bad field
