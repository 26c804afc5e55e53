"""Hot-swap against a real Redis and the fs weight store: newest version only, a corrupt version
refused (counted, old policy kept), sync-mode waiting, a restarted sampler catching up, and the
async mode's prefetch (fetched and verified off the loop, the swap only loads)."""

import threading

from services.sampler.backends import SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.weights_follower import WeightsFollower
from shared.metrics import sampler_metrics
from shared.run_folder import run_dir
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import publish_perturbed, sampler_config

GREEDY = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)


def test_follower_swaps_to_newest_and_refuses_corrupt(redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="wf")
    backend = HFBackend(model_dir, dtype="float32")
    metrics, reg = sampler_metrics()
    follower = WeightsFollower(redis_client, "wf", _store(cfg, redis_client), backend, tmp_path / "local", metrics)
    v0 = backend.generate([[5, 6, 7]], GREEDY)[0][0].token_ids.tolist()

    bad = publish_perturbed(redis_client, cfg, model_dir, version=1)
    (bad / "model.safetensors").write_bytes(b"garbage")  # damaged after publishing
    assert not follower.poll()
    assert follower.version == 0 and reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "checksum"}) == 1
    assert backend.generate([[5, 6, 7]], GREEDY)[0][0].token_ids.tolist() == v0

    publish_perturbed(redis_client, cfg, model_dir, version=2)
    publish_perturbed(redis_client, cfg, model_dir, version=3)
    assert follower.poll() and follower.version == 3  # skipped straight to the newest
    assert reg.get_sample_value("dashrl_weight_sync_seconds_count") == 1
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == ["v3"]  # only the served copy kept

    # sync mode: wait_for_newer blocks until the next version is announced
    done = threading.Event()
    waiter = threading.Thread(target=lambda: done.set() if follower.wait_for_newer(3, lambda: False, 200) else None)
    waiter.start()
    assert not done.wait(0.5)
    publish_perturbed(redis_client, cfg, model_dir, version=4)
    waiter.join(30)
    assert done.is_set() and follower.version == 4

    # a restarted sampler starts from the newest announced version
    fresh = WeightsFollower(redis_client, "wf", _store(cfg, redis_client), HFBackend(model_dir), tmp_path / "l2")
    assert fresh.catch_up() and fresh.version == 4


def _store(cfg, r):
    from shared.weights import make_store

    return make_store("fs", run_id=cfg.run_id, root=run_dir(cfg) / "weights", r=r)


def test_async_prefetch_fetches_off_the_loop_and_refuses_corrupt(redis_client, tmp_path):
    from tests.helpers.polling import wait_for

    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="pf")
    backend = HFBackend(model_dir, dtype="float32")
    metrics, reg = sampler_metrics()
    local = tmp_path / "local"
    follower = WeightsFollower(redis_client, "pf", _store(cfg, redis_client), backend, local, metrics)
    follower.catch_up()
    follower.start_prefetch()
    rejected = lambda: reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "checksum"})  # noqa: E731
    try:
        # damaged before it is announced: the prefetch thread could otherwise fetch it intact first
        publish_perturbed(redis_client, cfg, model_dir, version=1,
                          damage=lambda folder: (folder / "model.safetensors").write_bytes(b"garbage"))
        wait_for(lambda: rejected() == 1, "the prefetch thread to refuse v1", 30)  # no poll: off the loop
        assert not follower.poll() and follower.version == 0

        publish_perturbed(redis_client, cfg, model_dir, version=2)
        wait_for(lambda: follower.prefetch.ready_version() == 2, "v2 fetched ahead of the swap", 30)
        assert (local / "v2" / "dashrl-manifest.json").exists()
        assert follower.version == 0  # fetched, verified, not yet served: the loop has not polled
        assert follower.poll() and follower.version == 2  # the swap pays the load only
        assert reg.get_sample_value("dashrl_sampler_swap_pause_seconds_count", {"via": "store"}) == 1

        publish_perturbed(redis_client, cfg, model_dir, version=3)
        publish_perturbed(redis_client, cfg, model_dir, version=4)
        def served_v4():  # the loop's polls between engine calls
            follower.poll(block_ms=200)
            return follower.version == 4

        wait_for(served_v4, "v4 served", 30)
        assert sorted(p.name for p in local.iterdir()) == ["v4"]  # v3 (if fetched) deleted unloaded
    finally:
        follower.close()


def test_a_version_pruned_before_its_fetch_is_skipped_not_refused(redis_client, tmp_path, caplog):
    """The store keeps the newest few versions; one pruned while a slow follower had yet to
    fetch it is no sign of damage: skipped (warned, `reason=pruned`), and the newer one served."""
    from shared.broadcast import Broadcast
    from shared.keys import RunKeys
    from shared.protocol import WeightsPublished

    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="pr")
    metrics, reg = sampler_metrics()
    store = _store(cfg, redis_client)
    follower = WeightsFollower(redis_client, "pr", store, HFBackend(model_dir, dtype="float32"), tmp_path / "local", metrics)
    publish_perturbed(redis_client, cfg, model_dir, version=1)
    weights = Broadcast(redis_client, RunKeys("pr").weights, expect=WeightsPublished)
    v1 = weights.latest()  # announced; the learner then publishes v3 and prunes v1 before we read it
    publish_perturbed(redis_client, cfg, model_dir, version=3)
    store.prune(1)
    assert store.versions() == [3]
    redis_client.xtrim(RunKeys("pr").weights, maxlen=0)
    weights.publish(v1[1])  # the follower sees v1's announcement only
    assert not follower.poll() and follower.version == 0
    assert reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "pruned"}) == 1
    assert reg.get_sample_value("dashrl_sampler_weights_rejected_total", {"reason": "checksum"}) is None
    assert not any("refusing weight version" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "local" / "v1").exists()
