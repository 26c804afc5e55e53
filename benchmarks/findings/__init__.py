"""The paper's findings on the demo model and task, over seeds (`python -m benchmarks.findings`):
SFT vs RL, PPO-Multi/Mini at equal wall-clock, KL vs no KL at equal steps, and the comparison's
timing entries, written up as docs/findings.md. One command, resumable: results are stored in
`runs/findings/results.json` after every run and merged across invocations.

- `cli`: the command: the plan of runs left, running them, writing the doc;
- `entries`: the entries and their `--set` overrides;
- `store`: the results file, the plan, stored seconds per step;
- `rl`: each seed's start policy and one `dashrl run` -> one row;
- `sft_entry`: the `dashrl sft` loop in-process -> one row;
- `stats`: mean ± SE, paired differences, verdicts, area under the curve (pure);
- `claims`: the paper's claims and numbers, and the figures read off a row;
- `doc`, `plots`: docs/findings.md and docs/img/findings-*.png.
"""
