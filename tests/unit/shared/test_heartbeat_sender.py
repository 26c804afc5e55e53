"""shared/heartbeat.py: HeartbeatSender against a real private redis-server — beats from its
thread, sends at once on `beat`, ends with one final state that nothing older overwrites."""

from __future__ import annotations

import threading
import time

from shared.heartbeat import HeartbeatSender
from shared.protocol import LearnerReport
from shared.runstate import RunState


def beats_of(rs: RunState) -> dict[str, tuple[str, LearnerReport]]:
    return {hb.instance_id: (hb.state, hb.report) for hb in rs.heartbeats()}


def poll(cond, what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_thread_beats_then_beat_sends_now_then_stop_is_final(redis_client):
    rs, step = RunState(redis_client, "hb1"), [0]
    sender = HeartbeatSender(rs, "l0", lambda: LearnerReport(step=step[0]), interval_s=0.05).start()
    assert poll(lambda: beats_of(rs).get("l0"), "the first beat") == ("starting", LearnerReport(step=0))
    sender.state = "gathering"
    poll(lambda: beats_of(rs)["l0"][0] == "gathering", "the thread's next beat with the new state")
    step[0] = 3
    sender.beat("waiting")  # sent by the caller, not the thread: there at once
    assert beats_of(rs)["l0"] == ("waiting", LearnerReport(step=3))
    sender.stop("finished")
    assert beats_of(rs)["l0"] == ("finished", LearnerReport(step=3))
    step[0] = 4
    sender.beat("training")  # after stop nothing is sent: the final state stays
    sender.stop("failed")  # only the first stop counts
    time.sleep(0.2)  # four intervals: a thread still beating would have overwritten it
    assert beats_of(rs)["l0"] == ("finished", LearnerReport(step=3))


def test_a_failing_send_is_logged_and_the_thread_keeps_beating(redis_client, caplog):
    rs, calls = RunState(redis_client, "hb2"), []

    def report() -> LearnerReport:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("report not ready")
        return LearnerReport(step=len(calls))

    sender = HeartbeatSender(rs, "l0", report, interval_s=0.02).start()
    poll(lambda: beats_of(rs).get("l0"), "a beat after the failed one")
    sender.stop("stopped")
    assert "l0: heartbeat failed" in caplog.text and beats_of(rs)["l0"][0] == "stopped"


def test_stop_from_another_thread(redis_client):
    """The sampler's watchdog stops the heartbeat from its own thread, then exits the process."""
    rs = RunState(redis_client, "hb3")
    sender = HeartbeatSender(rs, "l1", LearnerReport, interval_s=0.05).start()
    watchdog = threading.Thread(target=sender.stop, args=("failed",))
    watchdog.start()
    watchdog.join(10)
    assert not watchdog.is_alive() and beats_of(rs)["l1"][0] == "failed"
