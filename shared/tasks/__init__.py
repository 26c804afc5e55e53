"""The task vocabulary every consumer shares: which problems a task has and which are held out
(`problems.py`: `load_task`, `Problem`, `TaskSet`), and how a problem becomes prompt token ids and
an SFT target (`render.py`: `PromptRenderer`). The sampler, `dashrl sft`, the demo policy and the
TRL baseline import it from here, so a model fine-tuned by `dashrl sft` sees at a run's first
eval exactly the prompts and held-out problems it was trained and scored on. Torch-free;
reasoning-gym and pyarrow load only when a task needs them.
"""

from shared.tasks.problems import (
    JSONL_SYSTEM_PROMPT,
    SOLVED,
    Problem,
    TaskSet,
    drop_held_out_questions,
    file_problems,
    load_task,
    read_rows,
    reference_completion,
)
from shared.tasks.render import PromptRenderer

__all__ = ["JSONL_SYSTEM_PROMPT", "SOLVED", "Problem", "PromptRenderer", "TaskSet", "drop_held_out_questions",
           "file_problems", "load_task", "read_rows", "reference_completion"]
