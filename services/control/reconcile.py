"""The control plane's background pass: re-derive run states, record dashboard samples, and
update the runs-by-state gauge, every couple of seconds, whether or not anyone is looking."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import redis

from services.control.runs_store import RunsStore
from shared.metrics import ControlMetrics
from shared.runstate import STATES

log = logging.getLogger(__name__)


def reconcile_once(store: RunsStore, metrics: ControlMetrics | None = None) -> None:
    for run_id in store.active_run_ids():
        store.record_series(store.view(run_id))
    if metrics is not None:
        counts = Counter(store.states(store.run_ids(1000)))
        for state in STATES:
            metrics.runs.labels(state=state).set(counts.get(state, 0))


async def reconcile_forever(store: RunsStore, metrics: ControlMetrics | None, every_s: float) -> None:
    while True:
        try:
            await asyncio.to_thread(reconcile_once, store, metrics)
        except redis.RedisError as err:  # Redis may come back; /readyz reports it meanwhile
            log.warning("reconcile: Redis error: %s", err)
        except Exception:  # a bad record must not stop the loop for every other run
            log.exception("reconcile failed")
        await asyncio.sleep(every_s)
