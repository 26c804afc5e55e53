"""Exactly-once bookkeeping: which rollout entries are in flight, trained, committed.

Pure (no Redis, no torch), so the rules are unit-tested on their own. Vocabulary:
- an entry is *gathered* when the learner has taken it for the step it is assembling;
- *held* once the step that trained it (or the decision to skip it) is done but not yet in a
  checkpoint — held entries are NOT acked: if the learner dies now, Redis redelivers them and
  the resumed learner (restored from the last checkpoint, which never saw them) trains them;
- *committed* once a checkpoint containing that step exists. Only then are they acked.
Batch ids (not entry ids) identify work: a redelivered entry of a committed batch, or a second
copy written by a retried XADD, is acked without training.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Literal

Verdict = Literal["new", "committed", "duplicate", "redelivered"]


class Ledger:
    def __init__(self, committed: Iterable[str] = (), remember: int = 100_000) -> None:
        # batch ids whose step is in a checkpoint; bounded because a duplicate can only arrive
        # shortly after its original (a redelivery or a retried write), never a whole run later
        self.committed: OrderedDict[str, None] = OrderedDict((b, None) for b in committed)
        self.remember = remember
        self.gathered: dict[str, list[str]] = {}  # batch id -> entry ids, step being assembled
        self.held: dict[str, list[str]] = {}  # batch id -> entry ids, done but not checkpointed
        self.trained_held: list[str] = []  # batch ids in `held` that were trained (not skipped)
        self._trim()

    def classify(self, entry_id: str, batch_id: str) -> Verdict:
        """What to do with a delivery: `new` (take it), `committed` (ack it now, it was trained
        and checkpointed), `duplicate` (another entry of a batch in flight: ack with that batch)
        or `redelivered` (an entry we already hold, reclaimed after idling: ignore)."""
        if batch_id in self.committed:
            return "committed"
        for book in (self.gathered, self.held):
            if batch_id in book:
                return "redelivered" if entry_id in book[batch_id] else "duplicate"
        return "new"

    def gather(self, entry_id: str, batch_id: str) -> None:
        self.gathered.setdefault(batch_id, [])
        if entry_id not in self.gathered[batch_id]:
            self.gathered[batch_id].append(entry_id)

    def attach(self, entry_id: str, batch_id: str) -> None:
        """A duplicate entry: acked together with the batch it duplicates."""
        book = self.gathered if batch_id in self.gathered else self.held
        book[batch_id].append(entry_id)

    def skip(self, entry_id: str, batch_id: str) -> None:
        """Decided not to train (stale, empty): committed with the next checkpoint like a step."""
        self.held.setdefault(batch_id, []).append(entry_id)

    def step_done(self, trained: Iterable[str]) -> None:
        """The gathered entries' step finished; `trained` are the batch ids it trained on."""
        for batch_id, entries in self.gathered.items():
            self.held.setdefault(batch_id, []).extend(entries)
        self.trained_held.extend(trained)
        self.gathered = {}

    def in_flight(self) -> int:
        """Entries taken from the stream and not acked (they count against the backlog)."""
        return sum(len(e) for e in self.gathered.values()) + sum(len(e) for e in self.held.values())

    def held_entries(self) -> int:
        return sum(len(e) for e in self.held.values())

    def to_commit(self) -> tuple[list[str], list[str], list[str]]:
        """(all committed batch ids after this commit, held entry ids to ack, trained batch ids)."""
        ids = list(self.committed) + [b for b in self.held if b not in self.committed]
        entries = [e for es in self.held.values() for e in es]
        return ids[-self.remember :], entries, list(self.trained_held)

    def committed_now(self) -> None:
        """The checkpoint with the held work exists: move held -> committed."""
        for batch_id in self.held:
            self.committed[batch_id] = None
        self.held, self.trained_held = {}, []
        self._trim()

    def _trim(self) -> None:
        while len(self.committed) > self.remember:
            self.committed.popitem(last=False)
