"""Benchmarks: each module is run from the repository root as `python -m benchmarks.<name>` and
writes its own `## ` section of docs/benchmarks.md (`benchmarks.doc_section`) or prints figures
that a doc quotes with the machine, date, command and load average.

| module | measures |
|---|---|
| `benchmarks.compare` | DASH vs GRPO vs TRL to a target accuracy (`benchmarks/compare/`) |
| `benchmarks.findings` | the paper's findings over seeds: SFT vs RL, PPO-Multi/Mini, KL, timing (docs/findings.md) |
| `benchmarks.transport` | protocol codec, stream round trips, `redis-benchmark` |
| `benchmarks.load` | many simulated samplers against one consumer |
| `benchmarks.sampler`, `benchmarks.learner` | generation and training throughput |
| `benchmarks.learner_mfu` | the learner on SmolLM2-135M's shapes against the CPU's matmul ceiling, padded vs packed |
| `benchmarks.logits_memory` | the learner's peak memory with and without chunked log-probs |
| `benchmarks.tied_swap` | in-place reload against an engine rebuild for a tied model |
| `benchmarks.weight_transport` | a weight version's publish-to-serving time and sampler pause: store paths, broadcast, memcpy |
| `benchmarks.real_model_run` | figures of a SmolLM2 run folder (docs/real-models.md) |

Only the standard library here: `benchmarks.compare.trl_grpo` runs in its own venv (.venv-trl).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: config paths, `runs/` and `docs/` are relative to it."""
