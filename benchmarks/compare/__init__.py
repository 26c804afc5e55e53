"""DASH against GRPO and TRL, side by side (`python -m benchmarks.compare`, see `run.py`).

- `run`: the entries, each a real `dashrl run` (or TRL), timed to a target accuracy;
- `analysis`: the clock rules, pure functions over a run folder's JSONL files;
- `doc`: the table, the plot and the "## DASH vs GRPO vs TRL" section of docs/benchmarks.md;
- `seeds`: several runs side by side (`python -m benchmarks.compare.seeds`);
- `trl_grpo`: TRL's own GRPOTrainer on the same task, run in .venv-trl
  (`.venv-trl/bin/python -m benchmarks.compare.trl_grpo`).

Only the standard library is imported here, so the TRL runner's venv can import the package.
"""
