"""Sync mode with two samplers on one run: they share a version's quota instead of each filling
it, so no more than one generation call's worth per sampler is left over (stale) per version."""

import threading

from services.sampler.main import build
from shared.metrics import sampler_metrics
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import G, M, read_batches, sampler_config

NEED = 48  # train_batch_size: two calls' worth (M x G = 24) at most per call


def test_two_sync_samplers_share_the_quota(redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    loops, runners, stop = [], [], threading.Event()
    try:
        for shard in (0, 1):
            cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="sync2", extra=[
                "sampler.mode=sync", f"learner.train_batch_size={NEED}", "sampler.eval_every=0",
                "sampler.num_shards=2", f"sampler.shard_index={shard}"])
            loop, _ = build(cfg, redis_client, "sync2", sampler_metrics()[0], tmp_path / f"local{shard}")
            loops.append(loop)
            runners.append(threading.Thread(target=loop.run, args=(stop.is_set,), daemon=True))
        for t in runners:
            t.start()
        share = NEED // 2
        wait_for(lambda: all(lp.finisher.kept_by_version[0] >= share for lp in loops), "both shares", 240)
        calls = [lp.calls for lp in loops]
        for t in runners:
            t.join(1.5)  # each has its share: both now wait for version 1
        assert all(t.is_alive() for t in runners) and [lp.calls for lp in loops] == calls
        kept = [lp.finisher.kept_by_version[0] for lp in loops]
        # each stopped at the call that reached its share (24); filling the whole quota alone
        # would have taken it to >= 48 = share + one call
        assert all(share <= k < share + M * G for k in kept), kept
        assert sum(len(b) for b in read_batches(redis_client, "sync2") if b.policy_version == 0) == sum(kept)
    finally:
        stop.set()
        for t in runners:
            t.join(30)
        for lp in loops:
            lp.close()
