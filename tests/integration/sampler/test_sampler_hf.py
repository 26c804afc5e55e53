"""The sampler end to end with the transformers backend: a real tiny model, a reasoning-gym
task, a private Redis; in-process (batches, log-probs, hot-swap, eval) and as the `dashrl
sampler` process (heartbeats, swap, graceful stop)."""

import os
import subprocess
import sys


from shared.configio import dump_config
from shared.keys import RunKeys
from shared.runstate import RunState
from tests.conftest import ROOT
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import publish_perturbed, read_batches, run_sampler_checks, sampler_config


def test_transformers_backend_batches_logprobs_and_hot_swap(redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers")
    run_sampler_checks(redis_client, cfg, model_dir, tmp_path, tol=1e-4)



def test_sampler_process_swaps_heartbeats_and_stops(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="proc1",
                         extra=["streams.max_backlog=3", "sampler.eval_every=0"])
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(dump_config(cfg))
    env = {**os.environ, "DASHRL_REDIS_URL": redis_proc.url, "DASHRL_METRICS_PORT": "0",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "sampler", str(cfg_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = RunState(redis_client, "proc1")
    try:
        wait_for(lambda: read_batches(redis_client, "proc1"), "a first batch", 90, procs=proc)
        # Nobody consumes: back-pressure holds the stream at max_backlog, it never grows past it.
        wait_for(lambda: len(read_batches(redis_client, "proc1")) == 3, "a full backlog", 90, procs=proc)
        publish_perturbed(redis_client, cfg, model_dir, version=1)
        keys = RunKeys("proc1")

        def consume_until_version_1() -> bool:
            # Play the learner: commit whatever is there until a version-1 batch shows up. Batches
            # generated before the swap (up to the pipeline's depth) may still carry version 0.
            if any(b.policy_version == 1 for b in read_batches(redis_client, "proc1")):
                return True
            redis_client.delete(keys.rollouts)
            redis_client.hset(keys.backlog, mapping={"produced": 0, "committed": 0})
            return False

        wait_for(consume_until_version_1, "a batch stamped with version 1", 90, procs=proc)
        wait_for(lambda: [h for h in state.heartbeats() if h.info.get("policy_version") == 1.0],
                 "a heartbeat reporting version 1", 90, procs=proc)
        assert len(read_batches(redis_client, "proc1")) <= 3
        state.request_stop("test done")
        assert proc.wait(timeout=60) == 0
        final = [h for h in state.heartbeats() if h.service == "sampler"]
        assert final and final[0].state == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in out, out[-3000:]


def test_sync_mode_waits_for_the_next_version(redis_client, tmp_path):
    import threading

    from services.sampler.main import build
    from shared.metrics import sampler_metrics

    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="sync1",
                         extra=["sampler.mode=sync", "learner.train_batch_size=4", "sampler.eval_every=0"])
    loop, _ = build(cfg, redis_client, "sync1", sampler_metrics()[0], tmp_path / "local")
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop.is_set,), daemon=True)
    try:
        runner.start()
        wait_for(lambda: len(read_batches(redis_client, "sync1")) == 1, "the version-0 batch", 90)
        runner.join(1.5)  # one learner step's worth is out: it must now wait for version 1
        assert runner.is_alive() and loop.calls == 1
        publish_perturbed(redis_client, cfg, model_dir, version=1)
        wait_for(lambda: len(read_batches(redis_client, "sync1")) == 2, "the version-1 batch", 90)
        runner.join(1.5)  # and now it waits for version 2
        assert loop.calls == 2
        assert [b.policy_version for b in read_batches(redis_client, "sync1")] == [0, 1]
        stop.set()
        runner.join(30)
        assert not runner.is_alive()  # a stop ends the wait
    finally:
        stop.set()
        loop.close()
