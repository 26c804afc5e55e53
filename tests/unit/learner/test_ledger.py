"""Exactly-once bookkeeping rules (pure)."""

from services.learner.ledger import Ledger


def test_lifecycle_gathered_held_committed():
    led = Ledger()
    assert led.classify("e1", "b1") == "new"
    led.gather("e1", "b1")
    assert led.classify("e1", "b1") == "redelivered"  # reclaimed while we hold it
    assert led.classify("e9", "b1") == "duplicate"  # a second copy from a retried write
    led.attach("e9", "b1")
    led.skip("e2", "b2")  # stale: acked with the next commit
    assert led.in_flight() == 3 and led.held_entries() == 1
    led.step_done(["b1"])
    assert led.held_entries() == 3
    committed, entries, trained = led.to_commit()
    assert sorted(committed) == ["b1", "b2"] and sorted(entries) == ["e1", "e2", "e9"] and trained == ["b1"]
    led.committed_now()
    assert led.in_flight() == 0
    assert led.classify("e7", "b1") == "committed" and led.classify("e8", "b3") == "new"


def test_resumed_ledger_recognises_committed_and_forgets_oldest():
    led = Ledger(["a", "b", "c"], remember=2)
    assert led.classify("x", "a") == "new"  # forgotten: only the newest 2 are remembered
    assert led.classify("x", "c") == "committed"


def test_gathered_but_untrained_entries_are_not_committed():
    led = Ledger()
    led.gather("e1", "b1")
    led.skip("e2", "b2")
    _, entries, trained = led.to_commit()  # a commit in the middle of gathering
    assert entries == ["e2"] and trained == []
    led.committed_now()
    assert led.classify("e1", "b1") == "redelivered" and led.in_flight() == 1
