"""benchmarks/findings/doc.py: docs/findings.md rendered from a synthetic results file: the summary
rows (paper beside measured, paired difference, direction wording), the per-entry tables, the
plots, and the machine/commands the rows recorded."""

from pathlib import Path

import pytest

from benchmarks.findings.doc import DocContext, render, write_doc
from benchmarks.findings.store import load_rows, save_rows


def run(entry, seed, end, steps=1000, training_s=600.0, **extra):
    curve = [[0.0, 0.2], [training_s / 3, end - 0.02], [2 * training_s / 3, end], [training_s, end + 0.02]]
    return {"entry": entry, "seed": seed, "steps": steps, "kind": "run", "training_s": training_s,
            "steps_done": 1000, "samples": 64000, "start_accuracy": 0.2, "curve": curve,
            "machine": "2 x Test CPU", "command": ".venv/bin/python -m benchmarks.findings --seeds 0,1,2",
            "finished": f"2026-12-0{seed + 1} 10:00 UTC", "load_before": [1.5, 1.0, 1.0], "recipe_version": 4, **extra}


@pytest.fixture
def results(tmp_path) -> list[dict]:
    rows = []
    for seed, (dash, sft, kl, multi) in enumerate([(0.60, 0.30, 0.50, 0.58), (0.62, 0.34, 0.49, 0.66),
                                                    (0.58, 0.32, 0.57, 0.61)]):
        rows += [run("dash", seed, dash, completion_len_mean=6.0, clip_fraction=0.001),
                 run("sft-time", seed, sft),
                 run("kl", seed, kl, completion_len_mean=6.0 + 0.5 * (seed + 1)),
                 run("ppo-multi", seed, multi, clip_fraction=0.05,
                     budget={"rule": "dash's 600 s / 0.800 s per step = 750 steps", "dash_training_s": 600.0})]
    path = tmp_path / "results.json"
    save_rows(path, rows)
    return load_rows(path)


def ctx(tmp_path: Path) -> DocContext:
    return DocContext(steps=1000, config="configs/demo-cpu.yaml", normalize_by="kept",
                      img_dir=tmp_path / "img", img_link="img", target=0.4)


def line(text: str, start: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(start))


def test_summary_rows_put_the_paper_beside_the_measured_difference(results, tmp_path):
    text = render(results, ctx(tmp_path))
    wall = line(text, "| SFT vs RL | DASH vs SFT, same wall-clock |")
    assert "DASH 27.2/54.0/64.6" in wall  # the paper's numbers
    assert "dash: 60.0% ± 1.2 (n=3)" in wall and "sft-time: 32.0% ± 1.2 (n=3)" in wall
    assert "+28.0 pt ± 1.2 (n=3)" in wall and wall.endswith("| **holds** |")
    # no KL beats kl by +10, +13, +1 points, mean +8.0 +- 3.6: more than 2 SE
    acc = line(text, "| KL (beta 0.04) vs no KL at equal steps | no KL vs KL 0.04: accuracy |")
    assert "+8.0 pt ± 3.6 (n=3)" in acc and acc.endswith("| **holds** |")
    # completions 6.0 vs 6.5/7.0/7.5 tokens: no KL shorter, as claimed
    length = line(text, "| KL (beta 0.04) vs no KL at equal steps | no KL vs KL 0.04: completion length |")
    assert "-1.00 tokens ± 0.29 (n=3)" in length and length.endswith("| **holds** |")
    # ppo-multi: -2, +4, +3 points: mean +1.7 +- 1.9, within 2 SE
    multi = line(text, "| PPO-Multi and PPO-Mini at equal wall-clock | PPO-Multi (K=2 passes) vs DASH |")
    assert multi.endswith("| **inconclusive** (difference within 2 SE) |")


def test_a_claim_measured_the_other_way_does_not_hold(results, tmp_path):
    flipped = [{**r, "entry": {"dash": "sft-time", "sft-time": "dash"}.get(r["entry"], r["entry"])} for r in results]
    wall = line(render(flipped, ctx(tmp_path)), "| SFT vs RL | DASH vs SFT, same wall-clock |")
    assert "-28.0 pt" in wall and wall.endswith("| **does not hold** |")


def test_entries_not_run_say_so_and_tables_show_seeds(results, tmp_path):
    text = render(results, ctx(tmp_path))
    assert line(text, "| SFT vs RL | DASH vs SFT, same samples |").endswith("| not run yet |")
    assert line(text, "| Where the time goes (the comparison's entries) | preemptive vs GRPO: s / step |").endswith(
        "| not run yet |")
    assert line(text, "| ppo-multi | 0, 1, 2 |").count("(n=3)") >= 5
    assert "| ppo-mini | - |" in text
    assert "- ppo-multi seed 0: dash's 600 s / 0.800 s per step = 750 steps; ran 1000 steps in 600 s" in text
    assert "- Machine: 2 x Test CPU." in text and "2026-12-01 10:00 UTC to 2026-12-03 10:00 UTC" in text
    assert "      .venv/bin/python -m benchmarks.findings --seeds 0,1,2" in text
    assert "`algo.normalize_by: kept`" in text
    assert "- Start policies: demo recipe version 4 (" in text


def test_write_doc_draws_a_plot_per_finding_run(results, tmp_path):
    doc = tmp_path / "findings.md"
    write_doc(results, ctx(tmp_path), doc)
    drawn = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert drawn == ["findings-kl.png", "findings-ppo.png", "findings-sft-vs-rl.png"]  # timing: no rows
    assert "](img/findings-kl.png)" in doc.read_text()
    assert (tmp_path / "img" / "findings-kl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_rows(tmp_path / "findings.json") == results  # the page's data lives beside it
