"""Sync mode, two samplers, two policy versions: once a version's quota is shared out, neither
sampler makes another rollout with it; after the next version is announced both sample only
with the new one. So the rollouts a sync learner would find stale are bounded by one call per
sampler per version (the call that crossed its share), never a whole sampler's worth."""

import threading

from services.sampler.main import build
from shared.metrics import sampler_metrics
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import G, M, publish_perturbed, read_batches, sampler_config
from tests.integration.sampler.test_sampler_hf import wait_for

NEED = 48  # train_batch_size: each sampler's share is 24, one call's worth (M x G) at most


def test_sync_samplers_move_to_the_next_version_together(redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    loops, runners, stop = [], [], threading.Event()
    try:
        for shard in (0, 1):
            cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="syncv", extra=[
                "sampler.mode=sync", f"learner.train_batch_size={NEED}", "sampler.eval_every=0",
                "sampler.num_shards=2", f"sampler.shard_index={shard}"])
            loop, _ = build(cfg, redis_client, "syncv", sampler_metrics()[0], tmp_path / f"local{shard}")
            loops.append(loop)
            runners.append(threading.Thread(target=loop.run, args=(stop.is_set,), daemon=True))
        for t in runners:
            t.start()
        share = NEED // 2
        wait_for(lambda: all(lp.finisher.kept_by_version[0] >= share for lp in loops), "v0 shares", timeout=300)
        publish_perturbed(redis_client, cfg, model_dir, version=1)  # what the learner does after its step
        wait_for(lambda: all(lp.finisher.kept_by_version[1] >= share for lp in loops), "v1 shares", timeout=300)
        for lp in loops:
            lp.finisher.flush()
        batches = read_batches(redis_client, "syncv")
        for shard in ("0", "1"):
            versions = [b.policy_version for b in batches if b.sampler_id.endswith(shard)]
            assert versions == sorted(versions) and set(versions) == {0, 1}, versions  # no v0 after v1
        for v in (0, 1):
            made = sum(len(b) for b in batches if b.policy_version == v)
            assert NEED <= made < NEED + 2 * M * G, (v, made)  # surplus: under one call per sampler
    finally:
        stop.set()
        for t in runners:
            t.join(30)
        for lp in loops:
            lp.close()
