"""benchmarks/compare/seeds.py: per-seed ratios against each run's own baseline, and medians."""

from benchmarks.compare.seeds import merge_by_seed, rows


def _run(seed, base_t, dash_t, base_steps=100, dash_steps=50):
    res = lambda n, t, steps, total: {"name": n, "time_to_target_s": t, "steps": steps,  # noqa: E731
                                      "seconds": {"total": total}}
    return {"args": {"seed": seed, "time_limit": 600.0},
            "results": [res("grpo-paper", base_t, base_steps, 100.0), res("dash", dash_t, dash_steps, 10.0)]}


def test_rows_take_ratios_per_run_and_medians():
    table = rows([_run(0, 100.0, 10.0), _run(1, 50.0, 20.0), _run(2, 80.0, None)])
    assert table[0].count("seed") == 3
    base, dash = table[2], table[3]
    assert base.startswith("| grpo-paper | 100 (1.00), 100 | 50 (1.00), 100 | 80 (1.00), 100 | 1.00 | 1.00 | 1.00 |")
    # dash: 0.10 and 0.40 (median 0.25); seed 2 never reached it; 0.2 s/step against 1.0
    assert dash == "| dash | 10 (0.10), 50 | 20 (0.40), 50 | > 600, 50 | 0.25 | 0.20 | 0.20 |"


def test_an_entry_run_later_joins_its_seed():
    later = {"args": {"seed": 0, "time_limit": 600.0, "finished": "t2"}, "paths": ["b"], "argv": ["--only", "x"],
             "results": [{"name": "x", "time_to_target_s": 5.0, "steps": 10, "seconds": {"total": 2.0}}]}
    first = {**_run(0, 100.0, 10.0), "paths": ["a"], "argv": []}
    first["args"]["finished"] = "t1"
    [merged] = merge_by_seed([first, later])
    assert [r["name"] for r in merged["results"]] == ["grpo-paper", "dash", "x"]
    assert merged["paths"] == ["a", "b"] and merged["finished"] == ["t1", "t2"]
    assert rows([merged])[4] == "| x | 5 (0.05), 10 | 0.05 | 0.20 | 0.20 |"
