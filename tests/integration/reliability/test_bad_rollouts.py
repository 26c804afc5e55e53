"""10,000 malformed entries pushed into a running learner's rollout stream, good batches
interleaved: the learner keeps training on the good ones, dead-letters every bad one with its
reason, and its Prometheus counters match the dead-letter stream."""

import collections
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.learner.steplog import read_steps
from shared.broadcast import protocol_error_category
from shared.keys import RunKeys
from shared.protocol import encode
from shared.streams import StreamWriter
from tests.helpers.learner_run import start_learner, write_config
from tests.helpers.polling import wait_for
from tests.helpers.malformed import KINDS, malformed
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

N_BAD, STEPS = 10_000, 5


def _dead_lettered(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "dashrl_learner_dead_lettered":
            out.update({s.labels["reason"]: s.value for s in fam.samples if s.name.endswith("_total")})
    return out


def test_learner_dead_letters_10k_malformed_entries_and_keeps_training(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run = "badinput"
    texts = prompts(4 * STEPS)
    good = [pol.batch(run, texts[4 * i: 4 * i + 4], first_group=4 * i) for i in range(STEPS)]
    bad = malformed(N_BAD, good[0])
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": STEPS, "checkpoint_every": 2},
                       streams={"max_backlog": 256, "deadletter_maxlen": 2 * N_BAD})
    keys, log = RunKeys(run), tmp_path / "learner.log"
    proc = start_learner(cfg, redis_proc.url, log)
    try:
        writer = StreamWriter(redis_client, keys.rollouts, backlog_key=keys.backlog, max_backlog=256)
        kind_of: dict[str, str] = {}
        per_good = N_BAD // (STEPS - 1)
        for i, batch in enumerate(good[:-1]):  # 2,500 bad entries before each of the first 4 good ones
            for kind, payload in bad[i * per_good: (i + 1) * per_good]:
                kind_of[writer.write(payload, timeout=60)] = kind
            writer.write(encode(batch), timeout=60)
        wait_for(lambda: redis_client.xlen(keys.deadletter) == N_BAD, "all bad entries dead-lettered", 120,
                 procs=proc, log=log)
        run_dir = tmp_path / "runs" / run
        wait_for(lambda: len(read_steps(run_dir / "metrics.jsonl")) == STEPS - 1, "4 steps", 60, procs=proc, log=log)
        port = int(re.search(r"metrics on port (\d+)", log.read_text()).group(1))
        metrics = _dead_lettered(port)  # scraped while the learner runs
        writer.write(encode(good[-1]), timeout=60)  # the learner finishes on it
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    # every bad entry is in the dead-letter stream once, with a reason that names the damage
    records = redis_client.xrange(keys.deadletter)
    assert len(records) == N_BAD
    by_entry = {f[b"entry_id"].decode(): f for _, f in records}
    assert set(by_entry) == set(kind_of)
    categories = collections.Counter()
    for entry_id, f in by_entry.items():
        reason, kind = f[b"reason"].decode(), kind_of[entry_id]
        assert re.search(KINDS[kind][1], reason), (kind, reason)
        assert f[b"category"].decode() == protocol_error_category(reason)
        assert b"orig:m" in f  # the original payload is kept for inspection
        categories[f[b"category"].decode()] += 1
    # the learner's counters agree with the dead-letter stream, reason by reason
    assert metrics == {k: float(v) for k, v in categories.items()}, (metrics, categories)
    assert sum(metrics.values()) == N_BAD
    assert {"schema_version", "wrong_kind", "invalid", "undecodable"} <= set(metrics)

    # training went on: each good batch trained exactly once, in order; nothing left in the stream
    steps = read_steps(tmp_path / "runs" / run / "metrics.jsonl")
    assert [s["batch_ids"] for s in steps] == [[b.batch_id] for b in good]
    assert {m.decode() for m in redis_client.smembers(keys.trained)} == {b.batch_id for b in good}
    assert redis_client.xlen(keys.rollouts) == 0
    assert int(redis_client.hget(keys.backlog, "committed")) == N_BAD + STEPS
    assert log.read_text().count("dead-lettering entry") == N_BAD  # each logged with its reason
