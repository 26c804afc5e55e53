"""The generation watchdog: a call past its bound is reported (callback, critical log) and the
process exit is requested with status 3; calls within their bound are left alone."""

import logging
import threading
import time

from services.sampler.watchdog import EXIT_STALLED, Watchdog


def test_overrun_call_exits_with_the_reason(caplog):
    exited, stalled = threading.Event(), []
    codes = []

    def fake_exit(code):  # os._exit in production; here record it and let the thread end
        codes.append(code)
        exited.set()

    dog = Watchdog({"generate": 0.2}, on_stall=lambda call, ran: stalled.append((call, ran)), exit_fn=fake_exit)
    with caplog.at_level(logging.CRITICAL, logger="services.sampler.watchdog"):
        with dog.guard("generate"):
            assert exited.wait(5)  # the guarded call "hangs" until the watchdog fires
    assert codes == [EXIT_STALLED]
    assert stalled and stalled[0][0] == "generate" and 0.2 < stalled[0][1] < 2
    assert any("generate call running for" in r.getMessage() and "over its 0.2s bound" in r.getMessage()
               for r in caplog.records)
    dog.close()


def test_calls_within_the_bound_are_left_alone():
    codes = []
    dog = Watchdog({"generate": 0.5}, exit_fn=codes.append)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # many short calls and idle time between them
        with dog.guard("generate"):
            time.sleep(0.05)
        time.sleep(0.05)
    dog.close()
    assert codes == []
