"""Sync mode with two samplers on one run: they share a version's quota instead of each filling
it, so no more than one generation call's worth per sampler is left over (stale) per version;
once a version's quota is shared out neither makes another rollout with it, and after the next
version is announced both sample only with the new one."""

import threading
from contextlib import contextmanager

from services.sampler.parts import build_loop
from shared.metrics import sampler_metrics
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import G, M, publish_perturbed, read_batches, sampler_config

NEED = 48  # train_batch_size: each sampler's share is 24, one call's worth (M x G) at most
SHARE = NEED // 2


@contextmanager
def _two_sync_samplers(redis_client, tmp_path, run_id):
    """Two sync-mode sampler loops (shards 0 and 1) running in threads; yields (cfg, model_dir, loops, runners)."""
    model_dir = build_tiny_model(tmp_path / "model")
    loops, runners, stop = [], [], threading.Event()
    try:
        for shard in (0, 1):
            cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id=run_id, extra=[
                "sampler.mode=sync", f"learner.train_batch_size={NEED}", "sampler.eval_every=0",
                "sampler.num_shards=2", f"sampler.shard_index={shard}"])
            loops.append(build_loop(cfg, redis_client, run_id, sampler_metrics()[0], tmp_path / f"local{shard}"))
            runners.append(threading.Thread(target=loops[-1].run, args=(stop.is_set,), daemon=True))
        for t in runners:
            t.start()
        yield cfg, model_dir, loops, runners
    finally:
        stop.set()
        for t in runners:
            t.join(30)
        for lp in loops:
            lp.close()


def _shares_reached(loops, version):
    return all(lp.finisher.kept_by_version[version] >= SHARE for lp in loops)


def test_two_sync_samplers_share_the_quota(redis_client, tmp_path):
    with _two_sync_samplers(redis_client, tmp_path, "sync2") as (_, _, loops, runners):
        wait_for(lambda: _shares_reached(loops, 0), "both shares", 240)
        calls = [lp.calls for lp in loops]
        for t in runners:
            t.join(1.5)  # each has its share: both now wait for version 1
        assert all(t.is_alive() for t in runners) and [lp.calls for lp in loops] == calls
        kept = [lp.finisher.kept_by_version[0] for lp in loops]
        # each stopped at the call that reached its share (24); filling the whole quota alone
        # would have taken it to >= 48 = share + one call
        assert all(SHARE <= k < SHARE + M * G for k in kept), kept
        assert sum(len(b) for b in read_batches(redis_client, "sync2") if b.policy_version == 0) == sum(kept)


def test_sync_samplers_move_to_the_next_version_together(redis_client, tmp_path):
    with _two_sync_samplers(redis_client, tmp_path, "syncv") as (cfg, model_dir, loops, _):
        wait_for(lambda: _shares_reached(loops, 0), "v0 shares", timeout=300)
        publish_perturbed(redis_client, cfg, model_dir, version=1)  # what the learner does after its step
        wait_for(lambda: _shares_reached(loops, 1), "v1 shares", timeout=300)
        for lp in loops:
            lp.finisher.flush()
        batches = read_batches(redis_client, "syncv")
        for shard in ("0", "1"):
            versions = [b.policy_version for b in batches if b.sampler_id.endswith(shard)]
            assert versions == sorted(versions) and set(versions) == {0, 1}, versions  # no v0 after v1
        for v in (0, 1):
            made = sum(len(b) for b in batches if b.policy_version == v)
            assert NEED <= made < NEED + 2 * M * G, (v, made)  # surplus: under one call per sampler
