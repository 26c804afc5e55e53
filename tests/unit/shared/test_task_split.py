"""The shared train/held-out split: deterministic, sized, held-out questions never trained on,
file formats, the SFT target form."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.config import JsonlTask, ReasoningGymTask, TaskConfig
from shared.configio import ConfigError
from shared.tasks import JSONL_SYSTEM_PROMPT, Problem, load_task, reference_completion


def test_reasoning_gym_split_is_deterministic_and_sized():
    cfg = TaskConfig(source=ReasoningGymTask(name="chain_sum", size=30), eval_size=5)
    a, b = load_task(cfg, seed=3), load_task(cfg, seed=3)
    assert len(a.train) == 30 and len(a.eval) == 5
    assert [p.question for p in a.train] == [p.question for p in b.train]
    assert a.train[0].entry["answer"] == a.train[0].answer
    assert "<answer>" in a.system_prompt
    assert load_task(cfg, seed=4).train[0].question != a.train[0].question or \
        load_task(cfg, seed=4).train[1].question != a.train[1].question


def test_reasoning_gym_training_never_holds_a_held_out_question(caplog):
    # A ~10k-question space: 2,000 draws repeat many of the 50 held-out questions.
    params = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2, operators="+",
                  allow_parentheses=False, allow_negation=False)
    cfg = TaskConfig(source=ReasoningGymTask(name="basic_arithmetic", size=2000, params=params), eval_size=50)
    with caplog.at_level("INFO", logger="shared.tasks.problems"):
        t = load_task(cfg, seed=0)
    held = {p.question for p in t.eval}
    assert len(t.eval) == 50 and not held & {p.question for p in t.train}
    dropped = 2000 - len(t.train)
    assert dropped > 0, "the test needs a space small enough for repeats"
    assert f"dropped {dropped} of 2000 training problems" in caplog.text
    assert [p.index for p in t.train] == list(range(len(t.train)))
    assert all(p.entry["question"] == p.question for p in t.train)


def test_jsonl_training_rows_repeating_a_held_out_question_are_dropped(tmp_path):
    path = tmp_path / "dup.jsonl"
    rows = [{"prompt": f"q{i % 5}", "answer": str(i % 5)} for i in range(40)]  # 5 questions, 8 copies each
    path.write_text("\n".join(json.dumps(r) for r in rows))
    t = load_task(TaskConfig(source=JsonlTask(path=str(path)), eval_size=2), seed=0)
    assert len(t.eval) == 2 and {p.question for p in t.eval}.isdisjoint({p.question for p in t.train})
    assert len(t.train) == 8 * 5 - 8 * len({p.question for p in t.eval})
    # The same holds for a separate eval file.
    ev = tmp_path / "eval.jsonl"
    ev.write_text(json.dumps({"prompt": "q3", "answer": "3"}))
    t = load_task(TaskConfig(source=JsonlTask(path=str(path), eval_path=str(ev)), eval_size=5), seed=0)
    assert [p.question for p in t.eval] == ["q3"] and len(t.train) == 32 and "q3" not in {p.question for p in t.train}


def test_a_training_set_left_empty_by_the_held_out_questions_is_refused(tmp_path):
    path = tmp_path / "same.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": "2+2?", "answer": "4"}) for _ in range(10)))
    with pytest.raises(ConfigError, match="no training problems left.*9 dropped"):
        load_task(TaskConfig(source=JsonlTask(path=str(path)), eval_size=1), seed=0)


def test_jsonl_split_off_eval_and_missing_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"What is {i}+1?", "a": str(i + 1)}) for i in range(20)))
    cfg = TaskConfig(source=JsonlTask(path=str(path), prompt_field="q", answer_field="a"), eval_size=4)
    t = load_task(cfg, seed=0)
    assert len(t.train) == 16 and len(t.eval) == 4
    assert {p.question for p in t.train}.isdisjoint({p.question for p in t.eval})
    assert t.system_prompt == JSONL_SYSTEM_PROMPT
    bad = TaskConfig(source=JsonlTask(path=str(path), prompt_field="question"), eval_size=0)
    with pytest.raises(ValueError, match="lacks"):
        load_task(bad, seed=0)


def test_parquet_with_eval_file(tmp_path):
    for name, n in (("train", 6), ("eval", 3)):
        pq.write_table(pa.table({"prompt": [f"{name[0]}{i}" for i in range(n)], "answer": [i for i in range(n)]}),
                       tmp_path / f"{name}.parquet")
    src = JsonlTask(path=str(tmp_path / "train.parquet"), eval_path=str(tmp_path / "eval.parquet"))
    t = load_task(TaskConfig(source=src, eval_size=2, system_prompt=""), seed=0)
    assert [p.question for p in t.train] == [f"t{i}" for i in range(6)]
    assert [p.answer for p in t.eval] == ["0", "1"]
    assert t.system_prompt == ""


def test_reference_completion_is_what_the_verifier_reads():
    p = Problem(0, "Calculate 2 + 3.", "5")
    assert reference_completion(p, ReasoningGymTask(name="basic_arithmetic")) == "<answer>5</answer>"
    assert reference_completion(p, JsonlTask(path="x.jsonl")) == "5"


@pytest.mark.process
def test_the_task_vocabulary_imports_no_torch_and_no_service():
    import subprocess
    import sys

    code = ("import sys, shared.tasks; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'services', 'reasoning_gym')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
