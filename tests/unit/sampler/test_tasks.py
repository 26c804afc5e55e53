"""Prompt sources: seeded order, disjoint shards, splits, file formats, prompt rendering."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.sampler.tasks import JSONL_SYSTEM_PROMPT, PromptOrder, PromptRenderer, load_task
from shared.config import JsonlTask, ReasoningGymTask, TaskConfig
from tests.helpers.tiny_model import build_tokenizer


def test_shards_are_disjoint_and_cover_every_problem_each_epoch():
    n, shards = 103, 4
    orders = [PromptOrder(n, seed=5, num_shards=shards, shard_index=k) for k in range(shards)]
    for epoch in range(2):
        parts = [set(o.shard(epoch).tolist()) for o in orders]
        assert sum(len(p) for p in parts) == n
        assert set().union(*parts) == set(range(n))


def test_order_is_seeded_and_crosses_epochs():
    a, b, c = PromptOrder(10, seed=1), PromptOrder(10, seed=1), PromptOrder(10, seed=2)
    first = a.take(7) + a.take(7)  # crosses into epoch 1
    assert first == b.take(14)
    assert sorted(first[:10]) == list(range(10))  # epoch 0 is a permutation
    assert first[10:] == PromptOrder(10, seed=1).shard(1)[:4].tolist()
    assert c.take(10) != PromptOrder(10, seed=1).take(10)


def test_bad_shard_config_is_refused():
    with pytest.raises(ValueError):
        PromptOrder(10, seed=0, num_shards=2, shard_index=2)
    with pytest.raises(ValueError):
        PromptOrder(1, seed=0, num_shards=2, shard_index=0)


def test_reasoning_gym_split_is_deterministic_and_sized():
    cfg = TaskConfig(source=ReasoningGymTask(name="chain_sum", size=30), eval_size=5)
    a, b = load_task(cfg, seed=3), load_task(cfg, seed=3)
    assert len(a.train) == 30 and len(a.eval) == 5
    assert [p.question for p in a.train] == [p.question for p in b.train]
    assert a.train[0].entry["answer"] == a.train[0].answer
    assert "<answer>" in a.system_prompt
    assert load_task(cfg, seed=4).train[0].question != a.train[0].question or \
        load_task(cfg, seed=4).train[1].question != a.train[1].question


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
        pq.write_table(pa.table({"prompt": [f"p{i}" for i in range(n)], "answer": [i for i in range(n)]}),
                       tmp_path / f"{name}.parquet")
    src = JsonlTask(path=str(tmp_path / "train.parquet"), eval_path=str(tmp_path / "eval.parquet"))
    t = load_task(TaskConfig(source=src, eval_size=2, system_prompt=""), seed=0)
    assert [p.question for p in t.train] == [f"p{i}" for i in range(6)]
    assert [p.answer for p in t.eval] == ["0", "1"]
    assert t.system_prompt == ""


def test_renderer_uses_chat_template_when_present():
    tok = build_tokenizer()
    plain = PromptRenderer(tok, "Be brief.")
    assert plain.text("2+2?") == "Be brief.\n\n2+2?\n"
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    chat = PromptRenderer(tok, "Be brief.")
    text = chat.text("2+2?")
    assert text == "[system]Be brief.\n[user]2+2?\n[assistant]"
    from services.sampler.tasks import Problem

    assert tok.decode(chat.ids(Problem(0, "2+2?", "4"))) == text
    assert PromptRenderer(tok, "").text("x") == "[user]x\n[assistant]"
