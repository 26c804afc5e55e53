"""Evals reach the experiment trackers per eval set: `eval/<name>/<figure>` on the policy-version
axis, read back with TensorBoard's own reader."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from services.sampler.evaluation import EvalResult, EvalSuite
from shared.tracking import Tracking
from shared.tracking_config import TensorBoardTracker


def test_each_named_eval_is_tracked_under_its_name(tmp_path):
    suite = EvalSuite([], tmp_path)
    suite.tracking = Tracking.start([TensorBoardTracker(log_dir=str(tmp_path / "tb"))], {}, tmp_path, "r", "sampler-0")
    for v, (m, g) in enumerate([(0.1, 0.3), (0.2, 0.4)]):
        suite._record(EvalResult("math500", 2 * v, 10, 1.0, greedy_accuracy=m))
        suite._record(EvalResult("gsm8k", 2 * v, 10, 1.0, sampled_accuracy=g, samples=4, pass_at_k={1: g, 4: 0.9}))
    suite.tracking.close()
    acc = EventAccumulator(str(tmp_path / "tb" / "sampler-0"))
    acc.Reload()
    read = lambda tag: [(e.step, round(e.value, 3)) for e in acc.Scalars(tag)]  # noqa: E731
    assert read("eval/math500/greedy_accuracy") == [(0, 0.1), (2, 0.2)]
    assert read("eval/gsm8k/sampled_accuracy") == [(0, 0.3), (2, 0.4)]
    assert read("eval/gsm8k/pass_at_k/4") == [(0, 0.9), (2, 0.9)]
    assert "eval/math500/sampled_accuracy" not in acc.Tags()["scalars"]  # not computed: not logged
    assert (tmp_path / "eval.jsonl").read_text().count("\n") == 4  # eval.jsonl as before
