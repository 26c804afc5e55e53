"""The narrowest exactly-once window: the learner dies after its checkpoint, before its acks.

Redis still holds the entries as pending; the resumed learner gets them back first and must
ack them without training (their batch ids are in the checkpoint), then go on with new data.
The death is injected by making the real reader's ack raise; everything else is real.
"""

from services.learner.main import build_learner
from services.learner.steplog import read_steps
from shared.config import Deployment
from shared.configio import load_config
from shared.keys import RunKeys
from tests.helpers.learner_run import write_batches, write_config
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model


class Crash(Exception):
    pass


def test_crash_between_checkpoint_and_ack(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run, texts = "window", prompts(16)
    batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(4)]
    path = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                        learner={"max_steps": 3, "checkpoint_every": 3})
    dep, run_dir, keys = Deployment(redis_url=redis_proc.url), tmp_path / "runs" / run, RunKeys(run)
    write_batches(redis_client, run, batches[:3])

    learner, _ = build_learner(load_config(path), dep, run_dir, resume=False)

    def die(_ids):
        raise Crash()

    learner.parts.reader.ack = die
    try:
        learner.run()
        raise AssertionError("the injected crash did not happen")
    except Crash:
        pass
    assert (run_dir / "checkpoints" / "step-3" / "state.json").exists()
    assert redis_client.xlen(keys.rollouts) == 3  # checkpointed, never acked
    assert redis_client.xpending(keys.rollouts, keys.rollouts_group)["pending"] == 3

    write_batches(redis_client, run, batches[3:])
    learner, _ = build_learner(load_config(path, ["learner.max_steps=4"]), dep, run_dir, resume=True)
    assert learner.run() is True
    recs = read_steps(run_dir / "metrics.jsonl")
    assert [r["batch_ids"] for r in recs] == [[b.batch_id] for b in batches]  # none trained twice
    assert recs[-1]["skipped"] == {"duplicate": [b.batch_id for b in batches[:3]]}
    assert redis_client.xlen(keys.rollouts) == 0
    assert int(redis_client.hget(keys.backlog, "committed")) == 4
