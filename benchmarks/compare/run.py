"""DASH against GRPO and TRL, side by side: the same model, task, seed and machine, one run after
another, each timed to a target held-out accuracy.

Entries (overrides on top of the base config, `configs/demo-cpu.yaml` by default; every dashrl
entry is a real `dashrl run`: embedded Redis, vLLM sampler, learner, control plane):

1. grpo-paper: GRPO as the paper's baseline ran it (TRL 0.17): synchronous, one small sampling
   call per learner micro-step (micro_batch / G prompts), no gradient filtering, KL beta 0.04;
2. preemptive: one call of M prompts x G per step, otherwise as 1;
3. dash: preemptive sampling + gradient filtering (|A| <= threshold dropped in the sampler);
4. dash-nokl: as 3, beta 0 (no reference model);
5. dash-async: as 4, asynchronous (sampling version v+1 while the learner trains on v);
6. dash-async-shared: as 5 with the learner's prompt sharing on (`learner.share_prompts`, dashrl's
   default: each prompt backpropagated once per micro-batch, not once per completion). Entries
   1-5 keep one row per sample, as TRL and the paper's code do, so 1-5 measure the paper's
   ideas and 6 what dashrl adds on top; dash-nokl-shared: 4 with prompt sharing (synchronous);
7. trl: TRL's own GRPOTrainer as it ships today (benchmarks/compare/trl_grpo.py in .venv-trl), matched
   batch sizes and learning rate, its other settings at TRL's defaults.

Every entry takes M x G completions per optimizer step (the filtered entries train on what
survives of them: with AdamW the update of a filtered step matches the unfiltered one, since the
dropped groups carry no gradient) and backpropagates in micro-batches of --micro-batch.
Clock rules: benchmarks/compare/analysis.py. Writes runs/compare/<stamp>/results.json, and with
--write-doc the "## DASH vs GRPO vs TRL" section of docs/benchmarks.md and docs/img/compare.png.

    .venv/bin/python -m benchmarks.compare --target 0.40 --time-limit 600 --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.compare.analysis import Result, pipeline_result, training_clock, eval_clock, trl_result
from benchmarks.compare.doc import write_doc
from services.control.report import read_jsonl
from shared.configio import load_config

ENTRIES = ("grpo-paper", "preemptive", "dash", "dash-nokl", "dash-async", "dash-async-shared", "dash-nokl-shared",
           "trl")


def variants(m: int, g: int, micro: int, threshold: float) -> dict[str, list[str]]:
    """Each dashrl entry's --set overrides."""
    step = m * g
    paper_m = max(1, micro // g)
    unshared = "learner.share_prompts=false"  # one row per sample, as the paper's code (TRL 0.17)
    sync_full = [unshared, "sampler.mode=sync", "algo.filter_threshold=null", "algo.kl_beta=0.04",
                 f"learner.train_batch_size={step}", f"streams.max_backlog={2 * step // (paper_m * g) + 2}"]
    # filtered entries: a step is whatever survives one call (the learner takes whole entries
    # until it has train_batch_size samples, so a small size means "one call's survivors")
    dash = [unshared, "sampler.mode=sync", f"algo.filter_threshold={threshold}", f"learner.train_batch_size={micro}",
            f"sampler.sampling_batch_prompts={m}", "streams.max_backlog=4"]
    dash_async = [o.replace("sampler.mode=sync", "sampler.mode=async") for o in dash] + [
        "algo.kl_beta=0.0", "streams.max_backlog=2", "learner.max_staleness=2"]
    return {
        "grpo-paper": sync_full + [f"sampler.sampling_batch_prompts={paper_m}"],
        "preemptive": sync_full + [f"sampler.sampling_batch_prompts={m}"],
        "dash": dash + ["algo.kl_beta=0.04"],
        "dash-nokl": dash + ["algo.kl_beta=0.0"],
        "dash-async": dash_async,
        "dash-async-shared": [o for o in dash_async if o != unshared],
        "dash-nokl-shared": [o for o in dash if o != unshared] + ["algo.kl_beta=0.0"],
    }


def common_overrides(args: argparse.Namespace) -> list[str]:
    # constant lr after warm-up: entries stop at a target or a time limit, not at a step horizon
    return [f"seed={args.seed}", f"learner.micro_batch_size={args.micro_batch}", "learner.max_steps=100000",
            "learner.schedule=constant",
            "learner.checkpoint_every=1000", f"sampler.eval_every={args.eval_every}", *args.set]


def run_pipeline(name: str, overrides: list[str], args: argparse.Namespace, out: Path) -> Result:
    """One `dashrl run`, stopped (SIGINT: graceful) at the target or the time limit."""
    run_id = f"cmp-{name}-{out.name}"
    cmd = [str(ROOT / ".venv/bin/dashrl"), "run", args.config]
    for o in [f"run_id={run_id}", f"output_dir={out}", *overrides]:
        cmd += ["--set", o]
    folder = out / run_id
    log = open(out / f"{name}.log", "w")
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    stopped_at = None
    while proc.poll() is None:
        time.sleep(2.0)  # polling files another process appends to; no result depends on the period
        res, clock = progress(name, folder, args.target)
        if stopped_at is None and res is not None and (
                (res.time_to_target_s is not None and not args.full) or clock > args.time_limit):
            print(f"[{name}] stopping: clock {clock:.0f}s, accuracy {res.final_accuracy}", flush=True)
            proc.send_signal(signal.SIGINT)
            stopped_at = time.monotonic()
        elif stopped_at is not None and time.monotonic() - stopped_at > 180:
            proc.kill()
    log.close()
    res, _ = progress(name, folder, args.target)
    if res is None:
        raise RuntimeError(f"{name}: no evaluation recorded; see {out / (name + '.log')}")
    res.notes = f"exit {proc.returncode}; overrides: {' '.join(overrides)}"
    return res


def progress(name: str, folder: Path, target: float) -> tuple[Result | None, float]:
    evals = read_jsonl(folder / "eval.jsonl")
    if not evals:
        return None, 0.0
    steps = read_jsonl(folder / "metrics.jsonl")
    calls = [row for p in sorted(folder.glob("sampler-*.jsonl")) for row in read_jsonl(p)]
    t0, done = eval_clock(evals)
    return pipeline_result(name, target, steps, evals, calls), training_clock(time.time(), t0, done)


def run_trl(args: argparse.Namespace, out: Path) -> Result:
    py = ROOT / ".venv-trl/bin/python"
    if not py.exists():
        subprocess.run(["bash", str(ROOT / "scripts/ensure-trl-venv.sh")], check=True, cwd=ROOT)
    path = out / "trl.json"
    cmd = [str(py), "-m", "benchmarks.compare.trl_grpo", "--config", args.config, "--out", str(path),
           "--time-limit", str(args.time_limit), "--target", str(args.target if not args.full else 2.0),
           "--eval-every", str(args.eval_every)]
    for o in common_overrides(args):
        cmd += ["--set", o]
    print(f"[trl] {' '.join(cmd)}", flush=True)
    with open(out / "trl.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
    data = json.loads(path.read_text())
    data["target"] = args.target
    res = trl_result(data)
    if args.full:  # the runner was told not to stop early; find the crossing in its curve
        res.time_to_target_s = next((t for t, a in res.curve if a >= args.target), None)
    return res


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo-cpu.yaml")
    p.add_argument("--target", type=float, required=True, help="held-out greedy accuracy to reach")
    p.add_argument("--also-target", type=float, default=None,
                   help="a lower accuracy whose time is read off the same curves (a second column)")
    p.add_argument("--time-limit", type=float, default=600.0, help="training-clock seconds per entry")
    p.add_argument("--micro-batch", type=int, default=8, help="completions per backprop micro-step")
    p.add_argument("--eval-every", type=int, default=5, help="optimizer steps between held-out evals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=",".join(ENTRIES), help=f"comma-separated subset of {ENTRIES}")
    p.add_argument("--full", action="store_true", help="run every entry to the time limit (no early stop)")
    p.add_argument("--set", action="append", default=[], help="extra config override for every entry")
    p.add_argument("--write-doc", action="store_true")
    p.add_argument("--from-results", default=None, metavar="RESULTS_JSON",
                   help="run nothing: write the doc section from an earlier run's results.json")
    return p.parse_args()


def doc_from_results(path: Path) -> int:
    """Re-write the doc from a finished comparison (its recorded arguments, not today's)."""
    saved = json.loads(path.read_text())
    args = argparse.Namespace(**saved["args"])
    if not getattr(args, "finished", None):
        args.finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
    results = [Result(**{**r, "curve": [tuple(p) for p in r["curve"]]}) for r in saved["results"]]
    argv = saved.get("argv") or [f"--target {args.target}", f"--time-limit {args.time_limit:.0f}"]
    sys.argv = ["benchmarks.compare", *argv]
    write_doc(results, args, path.parent)
    return 0


def main() -> int:
    args = parse_args()
    if args.from_results:
        return doc_from_results(Path(args.from_results).resolve())
    args.load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cfg = load_config(args.config, common_overrides(args))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = ROOT / "runs" / "compare" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    table = variants(cfg.sampler.sampling_batch_prompts, cfg.sampler.group_size, args.micro_batch,
                     cfg.algo.filter_threshold or 0.1)
    results: list[Result] = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in ENTRIES:
            raise SystemExit(f"--only: unknown entry {name!r}; choose from {ENTRIES}")
        started = time.time()
        res = run_trl(args, out) if name == "trl" else run_pipeline(
            name, common_overrides(args) + table[name], args, out)
        res.seconds["benchmark_wall"] = time.time() - started
        results.append(res)
        args.load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        args.finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"[{name}] time to {args.target:.0%}: {res.time_to_target_s}, final {res.final_accuracy}, "
              f"steps {res.steps}, seconds {json.dumps({k: round(v, 1) for k, v in res.seconds.items()})}",
              flush=True)
        (out / "results.json").write_text(json.dumps(
            {"args": vars(args), "argv": sys.argv[1:], "results": [r.to_json() for r in results]}, indent=1))
    if args.write_doc:
        write_doc(results, args, out)
    print(f"results: {out / 'results.json'}")
    return 0

