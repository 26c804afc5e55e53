"""Dataset folders as the `datasets` library writes them (save_to_disk Arrow, Hub Parquet shards)
read by `read_rows` / `load_task`: splits found by name, one-line errors for a missing split or
field, and MATH's worked solution reduced to its last \\boxed{} (`answer_from: boxed`)."""

import pytest

datasets = pytest.importorskip("datasets")

from shared.config import JsonlTask, TaskConfig  # noqa: E402
from shared.configio import ConfigError  # noqa: E402
from shared.tasks import load_task, read_rows  # noqa: E402
from shared.tasks.rows import last_boxed  # noqa: E402

TRAIN = {"problem": [f"What is {i} + 1?" for i in range(6)],
         "solution": [f"We add: ${i} + 1 = \\boxed{{{i + 1}}}$." for i in range(6)]}
TEST = {"problem": ["What is \\frac{1}{2} of 4?", "Twice 3?"],
        "solution": ["Half of 4 is \\boxed{2}. Not \\boxed{\\frac{4}{2}}? It is \\boxed{\\frac{4}{2}}.", "\\fbox{6}"]}


def hub_parquet(root):
    """The Hub's layout: data/<split>-00000-of-00001.parquet, written by `datasets`."""
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(TRAIN).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    datasets.Dataset.from_dict(TEST).to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


def saved_dict(root):
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(TRAIN),
                          "test": datasets.Dataset.from_dict(TEST)}).save_to_disk(str(root))
    return root


@pytest.mark.parametrize("make", [hub_parquet, saved_dict])
def test_dataset_folder_splits_read_by_name(tmp_path, make):
    folder = make(tmp_path / "math")
    rows = read_rows(folder, "test")
    assert [r["problem"] for _, r in rows] == TEST["problem"]
    assert rows[1][0] == f"{folder}[test]:row 2"
    with pytest.raises(ConfigError, match=r"no split 'validation' \(has \['test', 'train'\]\)"):
        read_rows(folder, "validation")
    with pytest.raises(ConfigError, match=r"holds splits \['test', 'train'\]; choose one with `split`"):
        read_rows(folder)


def test_single_split_save_to_disk_and_a_file_with_a_split(tmp_path):
    datasets.Dataset.from_dict(TRAIN).save_to_disk(str(tmp_path / "one"))
    assert len(read_rows(tmp_path / "one")) == 6
    f = tmp_path / "a.jsonl"
    f.write_text('{"prompt": "x", "answer": "1"}\n')
    with pytest.raises(ConfigError, match="a single file has no splits"):
        read_rows(f, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a dataset folder"):
        read_rows(tmp_path / "empty")


def test_math_folder_as_a_task_boxed_answers_and_test_split_held_out(tmp_path):
    folder = hub_parquet(tmp_path / "math")
    src = JsonlTask(path=str(folder), split="train", eval_split="test", prompt_field="problem",
                    answer_field="solution", answer_from="boxed")
    task = load_task(TaskConfig(source=src, eval_size=10), seed=0)
    assert [p.answer for p in task.train] == [str(i + 1) for i in range(6)]
    assert [(p.question, p.answer) for p in task.eval] == [(TEST["problem"][0], "\\frac{4}{2}"), ("Twice 3?", "6")]


def test_missing_field_and_missing_box_are_one_line_errors(tmp_path):
    folder = hub_parquet(tmp_path / "math")
    with pytest.raises(ConfigError, match=r"\[train\]:row 1: row lacks 'question' \(task.source.prompt_field\)"):
        load_task(TaskConfig(source=JsonlTask(path=str(folder), split="train", prompt_field="question"),
                             eval_size=0), seed=0)
    datasets.Dataset.from_dict({"problem": ["a", "b"], "solution": ["\\boxed{1}", "no box here"]}).to_parquet(
        str(tmp_path / "bad.parquet"))
    with pytest.raises(ConfigError, match=r"bad.parquet:row 2: 'solution' has no \\boxed\{\} answer"):
        load_task(TaskConfig(source=JsonlTask(path=str(tmp_path / "bad.parquet"), prompt_field="problem",
                                              answer_field="solution", answer_from="boxed"), eval_size=0), seed=0)


@pytest.mark.parametrize("text,want", [
    ("so \\boxed{3}", "3"), ("\\boxed{\\frac{1}{2}} then \\boxed{ 5 }", "5"), ("\\fbox{x^{2}}", "x^{2}"),
    ("none", None), ("\\boxed{1} and \\boxed{unclosed", "1"),
])
def test_last_boxed(text, want):
    assert last_boxed(text) == want
