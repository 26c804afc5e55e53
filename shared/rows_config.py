"""The fields every {prompt, answer} row source shares: the training file task (`task.source`,
kind `jsonl`) and a file eval (`task.evals[].source`, kind `file`). A source's `path` is a JSONL
or Parquet file or a Hugging Face `datasets` folder (`save_to_disk`, or Hub Parquet shards);
reading it is `shared.tasks.rows`."""

from __future__ import annotations

from typing import Literal

from shared.config_base import Strict


class RowFields(Strict):
    prompt_field: str = "prompt"
    """Column holding the question (MATH: `problem`; GSM8K: `question`)."""
    answer_field: str = "answer"
    """Column holding the reference answer (math-verify; GSM8K's `#### N` is understood)."""
    split: str | None = None
    """The split to read when `path` is a dataset folder (e.g. `train`, `test`); None: the
    folder's only split. A single file has no splits."""
    answer_from: Literal["field", "boxed"] = "field"
    """field: the answer column as written; boxed: the contents of its last `\\boxed{}` (MATH's
    `solution` column holds a worked solution ending in one). A row without one is an error."""
