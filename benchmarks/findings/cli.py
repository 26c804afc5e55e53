"""`python -m benchmarks.findings`: plan the runs left, run them one by one (storing each row as it
finishes), and with --write-doc (or only that, --doc-only) rewrite docs/findings.md and its plots.

    .venv/bin/python -m benchmarks.findings --seeds 0,1,2 --write-doc
    .venv/bin/python -m benchmarks.findings --seeds 0,1,2 --only dash,kl --rerun
    .venv/bin/python -m benchmarks.findings --doc-only
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.findings import entries as E
from benchmarks.findings.doc import DocContext, write_doc
from benchmarks.findings.rl import recipe_hashes, rl_row, start_policy
from benchmarks.findings.stats import steps_for_clock
from benchmarks.findings.store import (current, find, load_rows, plan, save_rows, seconds_per_step,
                                       seconds_per_step_on, upsert)
from shared.configio import load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.findings",
                                description="The paper's findings on the demo model and task, over seeds.")
    p.add_argument("--config", default="configs/demo-cpu.yaml")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--steps", type=int, default=None, help="steps of dash and kl (default: the config's max_steps)")
    p.add_argument("--only", default=",".join(E.ENTRIES), help=f"comma-separated subset of {', '.join(E.ENTRIES)}")
    p.add_argument("--rerun", action="store_true", help="run the chosen (entry, seed) pairs again even when stored")
    p.add_argument("--write-doc", action="store_true", help="rewrite the doc and plots after the runs")
    p.add_argument("--doc-only", action="store_true", help="run nothing: rewrite the doc from stored results")
    p.add_argument("--out", default="runs/findings", help="results.json, policies and run folders")
    p.add_argument("--doc", default="docs/findings.md", help="the doc to write (plots go to its img/ folder)")
    p.add_argument("--probe-steps", type=int, default=40, help="steps of a seconds-per-step probe")
    p.add_argument("--target", type=float, default=0.40, help="timing entries: held-out accuracy to time")
    p.add_argument("--time-limit", type=float, default=600.0, help="timing entries: training-clock seconds")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the SFT runs and the policy build")
    args = p.parse_args(argv)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.cfg = load_config(args.config)
    args.steps = args.steps or args.cfg.learner.max_steps
    try:
        args.wanted = E.parse_entries(args.only)
    except ValueError as err:
        p.error(str(err))
    return args


def machine() -> str:
    """lscpu's model name and CPU count."""
    try:
        info = dict(ln.split(":", 1) for ln in subprocess.run(["lscpu"], capture_output=True, text=True,
                                                               check=True).stdout.splitlines() if ":" in ln)
        return f"{info.get('CPU(s)', '?').strip()} x {info.get('Model name', '?').strip()}"
    except (OSError, subprocess.CalledProcessError):
        return f"{os.cpu_count()} CPUs"


def utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def finding_ns(args: argparse.Namespace) -> argparse.Namespace:
    """run_pipeline's arguments for a finding entry: run to max_steps, no time limit."""
    return argparse.Namespace(config=args.config, target=args.target, full=True, time_limit=float("inf"))


def dash_budget(rows: list[dict], entry: str, seed: int, args: argparse.Namespace) -> tuple[int, dict]:
    """(steps, budget note) of an entry sized from the seed's dash run."""
    dash = find(rows, "dash", seed, args.steps, recipe=getattr(args, "recipes", {}).get(seed))
    if dash is None:
        raise RuntimeError(f"{entry} seed {seed}: no dash run of {args.steps} steps from this start policy "
                           "to size it from")
    t = dash["training_s"]
    if entry == "sft-samples":
        n = max(1, round(dash["samples"] / 32))
        return n, {"rule": f"dash's {dash['samples']} samples / 32 = {n} steps", "dash_training_s": t}
    scaled = entry not in E.SFT and seconds_per_step_on(rows, entry, dash)
    per = scaled or seconds_per_step(rows, entry)
    n = steps_for_clock(t, per)
    how = " (this seed's dash s / step x the entry's median ratio to dash)" if scaled else ""
    return n, {"rule": f"dash's {t:.0f} s / {per:.3f} s per step{how} = {n} steps", "dash_training_s": t,
               "s_per_step": per}


def rl_entry(entry: str, seed: int, policy: Path, rows: list[dict], args, out: Path) -> dict:
    folder = out / entry / f"seed{seed}"
    if entry in E.TIMING:
        ns = E.timing_namespace(seed, args.target, args.time_limit, args.config)
        s = args.cfg.sampler
        sets = E.timing_overrides(entry, ns, str(policy), s.sampling_batch_prompts, s.group_size,
                                  args.cfg.algo.filter_threshold or 0.1)
        return {**rl_row(entry, seed, sets, folder, ns), "window_s": args.time_limit}
    steps, budget = dash_budget(rows, entry, seed, args) if entry in E.EQUAL_CLOCK else (args.steps, None)
    row = rl_row(entry, seed, E.finding_overrides(entry, seed, str(policy), steps), folder, finding_ns(args))
    return {**row, "max_steps": steps, "budget": budget}


def rl_probe(entry: str, seed: int, policy: Path, args, out: Path) -> dict:
    sets = E.finding_overrides(entry, seed, str(policy), args.probe_steps)
    row = rl_row(entry, seed, sets, out / entry / f"probe-seed{seed}", finding_ns(args))
    return {**row, "kind": "probe", "max_steps": args.probe_steps}


class Recorder:
    """Stores each finished run's row at once (stamped with where, when and how it ran)."""

    def __init__(self, results: Path, args: argparse.Namespace) -> None:
        self.results, self.args, self.rows = results, args, load_rows(results)
        self.origin: dict = {}  # the start policy of the runs now being recorded
        self.started, self.load = time.time(), os.getloadavg()

    def begin(self, origin: dict) -> None:
        self.origin, self.started, self.load = origin, time.time(), os.getloadavg()

    def record(self, row: dict) -> dict:
        a = self.args
        row = {"steps": E.horizon(row["entry"], a.steps), "kind": "run", **row, **self.origin, "config": a.config,
               "machine": a.machine, "command": a.command, "started": time.strftime(
                   "%Y-%m-%d %H:%M UTC", time.gmtime(self.started)), "finished": utc(),
               "wall_s": time.time() - self.started, "load_before": list(self.load),
               "load_after": list(os.getloadavg())}
        self.rows = upsert(self.rows, row)
        save_rows(self.results, self.rows)  # a killed invocation loses only the run in progress
        print(f"findings: {row['entry']}/seed{row['seed']} ({row['kind']}): {row['steps_done']} steps, "
              f"{row['training_s']:.1f} s training, accuracy {row.get('start_accuracy')} -> "
              f"{row.get('final_accuracy')}", flush=True)
        self.started, self.load = time.time(), os.getloadavg()  # the next row's run starts now
        return row


def sft_entry_run(entry: str, seed: int, policy: Path, rec: Recorder, out: Path) -> None:
    """The SFT run, after a probe when no SFT seconds per step are stored yet."""
    from benchmarks.findings import sft_entry as S

    task = S.load_sft_task(rec.args.config, seed, policy)
    if entry == "sft-time" and seconds_per_step(rec.rows, entry) is None:
        rec.record(S.sft_probe(task, seed, rec.args.probe_steps))
    steps, budget = dash_budget(rec.rows, entry, seed, rec.args)
    clock = budget["dash_training_s"] if entry == "sft-time" else None
    rec.record({**S.sft_run(entry, task, seed, steps, clock, out / entry / f"seed{seed}"), "budget": budget})


def run_entry(entry: str, seed: int, rec: Recorder, out: Path) -> None:
    """One (entry, seed): a probe first where the entry needs one, then the run; each recorded."""
    import torch

    args = rec.args
    torch.set_num_threads(args.threads)
    policy, origin = start_policy(out, args.config, seed)
    rec.begin(origin)
    if entry in E.SFT:
        sft_entry_run(entry, seed, policy, rec, out)
        return
    if entry in E.EQUAL_CLOCK and seconds_per_step(rec.rows, entry) is None:
        rec.record(rl_probe(entry, seed, policy, args, out))
    rec.record(rl_entry(entry, seed, policy, rec.rows, args, out))


def run_plan(args, out: Path, results: Path) -> int:
    rec = Recorder(results, args)
    args.recipes = recipe_hashes(args.config, args.seed_list)
    todo = plan(rec.rows, args.wanted, args.seed_list, args.steps, args.rerun, args.recipes)
    print(f"findings: {len(todo)} runs to do: {', '.join(f'{e}/seed{s}' for e, s in todo) or 'none'}", flush=True)
    failed = []
    for entry, seed in todo:
        try:
            run_entry(entry, seed, rec, out)
        except (RuntimeError, subprocess.CalledProcessError) as err:
            print(f"findings: {entry}/seed{seed} failed: {err}", flush=True)
            failed.append(f"{entry}/seed{seed}")
    if failed:
        print(f"findings: failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def doc(args, results: Path) -> None:
    path = (ROOT / args.doc).resolve()
    ctx = DocContext(steps=args.steps, config=args.config, normalize_by=args.cfg.algo.normalize_by,
                     img_dir=path.parent / "img", img_link="img", target=args.target)
    rows = load_rows(results)
    fresh = current(rows, recipe_hashes(args.config, sorted({r["seed"] for r in rows})))
    write_doc(fresh, ctx, path)
    print(f"findings: wrote {path} and its plots ({ctx.img_dir}/findings-*.png) from {len(fresh)} rows"
          + (f"; {len(rows) - len(fresh)} rows of an older start-policy recipe left out" if len(fresh) < len(rows)
             else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.machine, args.command = machine(), shlex.join([".venv/bin/python", "-m", "benchmarks.findings",
                                                         *(sys.argv[1:] if argv is None else argv)])
    out = (ROOT / args.out).resolve()
    results = out / "results.json"
    rc = 0 if args.doc_only else run_plan(args, out, results)
    if args.doc_only or args.write_doc:
        doc(args, results)
    return rc
