"""docs/findings.md, written whole from the stored rows (`benchmarks.findings.store`): the table
of findings (the paper's claim and numbers beside the measured mean ± SE, the paired difference
and whether the direction holds), then per finding a table per entry, its budgets and its plot
(`benchmarks.findings.plots`), and the machine, dates, load and commands the rows record."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.findings import stats
from benchmarks.findings.claims import FINDINGS, METRICS, Comparison, Finding
from benchmarks.findings.plots import plot_finding
from benchmarks.findings.store import save_rows, seed_rows

PREAMBLE = """\
The findings of Huang et al., *Effective Reinforcement Learning for Reasoning in Language Models*
(arXiv 2505.17218), measured again on the CPU demo: `{config}` (a 1.1M-parameter Llama that starts
weak at two-term additions, 200 held-out questions neither SFT nor RL trains on; docs/demo.md). The
paper's numbers are Qwen2.5 models on MATH, hours on GPUs; these are minutes on CPU cores, so the
question each row asks is whether the paper's *direction* holds here, not its size.

Method. Every entry of seed k starts from the same policy: the demo recipe built for that seed's
split (`dashrl demo-policy`'s recipe, `runs/findings/policies/seed<k>`). RL entries are real
`dashrl run`s of the config with `--set` overrides (listed per finding); SFT entries run the
`dashrl sft` loop on the run's training split. The training clock starts at the end of the
version-0 held-out eval and leaves every later eval out (the comparison benchmark's rules,
`benchmarks/compare/analysis.py`). Accuracy is greedy held-out accuracy; a run's figure is the
mean of its last three evals (one eval of 200 problems has a standard error of about 3.5
points). Each cell is the mean over seeds ± its standard error (sample std / sqrt(n); n = 1 has
none). The paired difference is entry minus baseline, seed by seed. A direction **holds** when
that mean difference has the claimed sign and lies more than 2 SE from zero, **does not hold**
when it lies more than 2 SE the other way, and is **inconclusive** otherwise. With 3 to 5 seeds
that rule is lenient (a two-sided t-test at 5% asks for 4.3 SE with 3 seeds, 2.8 with 5), so a
verdict says which way the runs leaned, not that the gap is settled. The area under the
accuracy-vs-time curve treats the curve as a step function (each eval's accuracy holds from the
moment its policy version was made until the next one, the last one to the window's end T) and is
divided by T: the mean accuracy over the window. Loss normaliser: `algo.normalize_by: {normalize_by}`,
the demo config's (the learner divides by the samples that survived gradient filtering, as the
paper's code does).
"""


@dataclass(frozen=True)
class DocContext:
    steps: int  # the horizon of the finding rows shown
    config: str
    normalize_by: str
    img_dir: Path  # where the plots go
    img_link: str  # how the doc links that folder ("img")
    target: float | None = None


def values(rows: list[dict], entry: str, steps: int, metric: str) -> dict[int, float | None]:
    return {r["seed"]: METRICS[metric].of(r) for r in seed_rows(rows, entry, steps)}


def cell(est: stats.Estimate, metric: str, diff: bool = False) -> str:
    m = METRICS[metric]
    if est.mean is None:
        return "-"
    sign = "+" if diff and est.mean >= 0 else ""
    se = f" ± {est.se * m.scale:.{m.digits}f}" if est.se is not None else ""
    return f"{sign}{est.mean * m.scale:.{m.digits}f}{m.diff_unit if diff else m.unit}{se} (n={est.n})"


def value_cell(vals: dict[int, float | None], metric: str) -> str:
    est = stats.mean_se(list(vals.values()))
    missing = sum(v is None for v in vals.values())
    text = cell(est, metric)
    if missing and metric == "time_to_target":
        text += f"; {missing} of {len(vals)} seeds not reached"
    return text


def comparison_row(finding: Finding, c: Comparison, rows: list[dict], steps: int) -> str:
    entry, base = values(rows, c.entry, steps, c.metric), values(rows, c.baseline, steps, c.metric)
    diffs = stats.paired_differences(entry, base)
    if not entry or not base:
        word = "not run yet"
    else:
        word, why = stats.verdict(diffs, c.better)
        word = f"**{word}**" + (f" ({why})" if why else "")
    return (f"| {finding.title} | {c.label} | {c.claim} ({c.entry} {c.better}) | {c.paper} "
            f"| {c.entry}: {value_cell(entry, c.metric)} | {c.baseline}: {value_cell(base, c.metric)} "
            f"| {cell(stats.mean_se(diffs), c.metric, diff=True)} | {word} |")


def summary_table(rows: list[dict], steps: int) -> list[str]:
    out = ["| finding | comparison | paper's claim | paper's numbers | measured: entry | measured: baseline "
           "| paired difference (entry - baseline) | direction here |", "|---|---|---|---|---|---|---|---|"]
    return out + [comparison_row(f, c, rows, steps) for f in FINDINGS for c in f.comparisons]


def entry_table(finding: Finding, rows: list[dict], steps: int) -> list[str]:
    heads = [METRICS[m].heading for m in finding.columns]
    out = ["| entry | seeds | " + " | ".join(heads) + " |", "|---|---|" + "---:|" * len(heads)]
    for entry in finding.entries:
        found = seed_rows(rows, entry, steps)
        cells = [value_cell(values(rows, entry, steps, m), m) for m in finding.columns]
        out.append(f"| {entry} | {', '.join(str(r['seed']) for r in found) or '-'} | " + " | ".join(cells) + " |")
    return out


def run_notes(finding: Finding, rows: list[dict], steps: int) -> list[str]:
    """Per entry: its overrides (once) and, for equal-clock entries, each seed's budget."""
    out = []
    for entry in finding.entries:
        found = seed_rows(rows, entry, steps)
        if found and found[0].get("overrides"):
            sets = " ".join(o for o in found[0]["overrides"] if not o.startswith(("seed=", "model.path=")))
            out.append(f"- **{entry}**: `dashrl run {found[0].get('config', '')}` with `--set` {sets}")
        for r in found:
            b = r.get("budget")
            if b:
                out.append(f"- {entry} seed {r['seed']}: {b['rule']}; ran {r['steps_done']} steps in "
                           f"{r['training_s']:.0f} s of training clock")
    return out


def finding_section(finding: Finding, rows: list[dict], ctx: DocContext) -> list[str]:
    curves = {e: [r["curve"] for r in seed_rows(rows, e, ctx.steps)] for e in finding.entries}
    name = f"findings-{finding.key}.png"
    timed = [r for e in finding.entries for r in seed_rows(rows, e, ctx.steps) if r.get("window_s")]
    target = (timed[0].get("target") if timed else ctx.target) if finding.key == "timing" else None
    drawn = plot_finding(finding, curves, ctx.img_dir / name, target)
    out = [f"## {finding.title}", "", f"The paper: {finding.claim}", ""]
    if timed:
        out += [f"Target {timed[0]['target']:.0%} held-out accuracy; window {timed[0]['window_s']:.0f} s.", ""]
    out += [*entry_table(finding, rows, ctx.steps), ""]
    notes = [f"- {n}" for n in finding.notes] + run_notes(finding, rows, ctx.steps)
    if notes:
        out += [*notes, ""]
    if drawn:
        out += [f"![{finding.title}: held-out accuracy against the training clock]({ctx.img_link}/{name})", ""]
    else:
        out += ["Not run yet: no rows for these entries.", ""]
    return out


def provenance(rows: list[dict]) -> list[str]:
    """Machine, dates, load and the exact commands, as the rows recorded them."""
    if not rows:
        return ["No runs recorded yet."]
    machines = sorted({r.get("machine", "?") for r in rows})
    finished = sorted(r.get("finished", "?") for r in rows)
    loads = [r["load_before"][0] for r in rows if r.get("load_before")]
    commands = sorted({r.get("command", "?") for r in rows})
    versions = sorted({str(r["recipe_version"]) for r in rows if r.get("recipe_version") is not None})
    out = [f"- Machine: {'; '.join(machines)}.",
           f"- Start policies: demo recipe version {', '.join(versions) or 'not recorded'} "
           "(`services/sft/demo_policy.py`, `RECIPE_VERSION`; docs/demo.md).",
           f"- Runs finished {finished[0]} to {finished[-1]} ({len(rows)} rows, probes included).",
           f"- Load average (1 min) when a run started: {min(loads):.2f} to {max(loads):.2f}." if loads else
           "- Load average: not recorded.",
           "- The rows behind this page: `docs/findings.json` (written with it). To add runs to them, copy it to "
           "`runs/findings/results.json` first; a start policy built on another CPU may stop SFT elsewhere "
           "(docs/demo.md), and each row records its start accuracy.",
           "- Commands (each resumes the results stored under its `--out`, default `runs/findings/results.json`):", ""]
    return out + [f"      {c}" for c in commands]


def render(rows: list[dict], ctx: DocContext) -> str:
    lines = ["# Findings: the paper's claims on the CPU demo", "",
             f"Generated by `python -m benchmarks.findings` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             "from stored results; edit the generator (`benchmarks/findings/doc.py`), not this file.", "",
             PREAMBLE.format(config=ctx.config, normalize_by=ctx.normalize_by),
             f"Finding entries ran {ctx.steps} steps (`--steps`); PPO and SFT entries as many as their budgets "
             "allow.", "",
             *summary_table(rows, ctx.steps), ""]
    for finding in FINDINGS:
        lines += finding_section(finding, rows, ctx)
    lines += ["## Machine, dates, commands", "", *provenance(rows), ""]
    return "\n".join(lines)


def write_doc(rows: list[dict], ctx: DocContext, path: Path) -> None:
    """The doc, its plots, and the rows it shows beside it (`findings.json`): runs/ is not kept
    with the code, and the page's numbers should not outlive their data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(rows, ctx))
    save_rows(path.with_suffix(".json"), rows)
