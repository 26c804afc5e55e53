"""The progress line, and report.png + summary from a run folder's JSONL files."""

import io
import json

from services.control.progress import Progress, format_line
from services.control.report import eval_lines, by_eval, read_jsonl, summarize_run, write_report
from services.control.status import RunView, TokensPerSecond


def view(step, state="running"):
    return RunView(id="r", state=state, learner_step=step, max_steps=10, policy_version=step, reward_mean=0.25,
                   eval_accuracy=None, tokens_per_s=TokensPerSecond(sampler=1234.4, learner=56.0))


def test_format_line():
    line = format_line(view(5), elapsed_s=83)
    assert line.startswith("[##########..........] step 5/10 v5 |")
    assert "reward 0.250" in line and "acc -" in line and "sampler 1234 tok/s" in line
    assert line.endswith("running 01:23")


def test_progress_without_tty_prints_lines_on_change():
    out = io.StringIO()
    p = Progress(out, every_s=3600)
    p.update(view(1))
    p.update(view(1))  # unchanged and not yet due: no new line
    p.update(view(1), force=True)  # the final line is not repeated either
    assert out.getvalue().count("\n") == 1
    p.update(view(2, "finished"), force=True)
    assert out.getvalue().count("\n") == 2 and "finished" in out.getvalue()
    p.message("stopping")
    assert out.getvalue().endswith("stopping\n") and "\r" not in out.getvalue()


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn": ')


def test_report_and_summary(tmp_path):
    write_rows(tmp_path / "metrics.jsonl", [{"step": i, "time": 1000 + 10 * i, "reward_mean": 0.1 * i} for i in range(1, 6)])
    write_rows(tmp_path / "eval.jsonl", [{"version": v, "time": 1000 + 20 * v, "greedy_accuracy": 0.1 + 0.1 * v}
                                         for v in (0, 2, 4)])
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 5  # the torn last line is skipped
    png = write_report(tmp_path, started_at=1000)
    assert png == tmp_path / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    s = summarize_run(tmp_path, 1000.0, 1100.0)
    assert (s.steps, s.start_accuracy, round(s.final_accuracy, 3), s.wall_time_s) == (5, 0.1, 0.5, 100.0)
    assert "0.100 at the start -> 0.500 at the end" in "\n".join(s.lines())
    assert (round(s.last3_mean, 3), round(s.best_accuracy, 3)) == (0.4, 0.5)  # the start is not averaged in


def test_summary_shows_the_mean_of_the_last_three_evals_and_the_best(tmp_path):
    accs = [0.05, 0.30, 0.42, 0.38, 0.33]
    write_rows(tmp_path / "eval.jsonl", [{"version": 10 * i, "time": 1000 + i, "greedy_accuracy": a}
                                         for i, a in enumerate(accs)])
    s = summarize_run(tmp_path, 1000.0, 1010.0)
    assert (s.start_accuracy, s.final_accuracy, s.best_accuracy) == (0.05, 0.33, 0.42)
    assert abs(s.last3_mean - (0.42 + 0.38 + 0.33) / 3) < 1e-9
    assert "mean of the last 3 evals 0.377, best eval 0.420" in "\n".join(s.lines())


def test_report_without_metrics(tmp_path):
    assert write_report(tmp_path) is None
    assert summarize_run(tmp_path, None, None).final_accuracy is None


def test_report_and_summary_with_two_named_evals(tmp_path):
    rows = []
    for v, (m, g) in enumerate([(0.10, 0.30), (0.20, 0.35), (0.25, 0.40)]):
        rows += [{"name": "math500", "version": v, "time": 1000 + 10 * v, "greedy_accuracy": m},
                 {"name": "gsm8k", "version": v, "time": 1001 + 10 * v, "sampled_accuracy": g,
                  "pass_at_k": {"1": g}}]  # pass@k only: its accuracy is the sampled pass@1
    write_rows(tmp_path / "eval.jsonl", rows)
    write_rows(tmp_path / "metrics.jsonl", [{"step": 1, "time": 1005, "reward_mean": 0.2}])
    assert list(by_eval(read_jsonl(tmp_path / "eval.jsonl"))) == ["math500", "gsm8k"]
    lines, title = eval_lines(by_eval(read_jsonl(tmp_path / "eval.jsonl")))
    assert [(label, [v for _, v in series]) for label, series in lines] == [
        ("math500", [0.10, 0.20, 0.25]), ("gsm8k", [0.30, 0.35, 0.40])]  # one line per eval
    assert "greedy" in title
    png = write_report(tmp_path, started_at=1000)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    s = summarize_run(tmp_path, 1000.0, 1030.0)
    assert (s.start_accuracy, s.final_accuracy, s.headline) == (0.10, 0.25, "math500")  # the first eval
    text = "\n".join(s.lines())
    assert "eval accuracy (math500): 0.100 at the start -> 0.250 at the end" in text
    assert "gsm8k: 0.300 at the start -> 0.400 at the end" in text


def test_rows_without_names_are_the_one_held_out_eval(tmp_path):
    write_rows(tmp_path / "eval.jsonl", [{"version": v, "time": 1000 + v, "greedy_accuracy": 0.1, "sampled_accuracy": 0.2}
                                         for v in (0, 1)])
    lines, title = eval_lines(by_eval(read_jsonl(tmp_path / "eval.jsonl")))
    assert [label for label, _ in lines] == ["greedy", "sampled"] and title == "eval accuracy (held-out)"
    s = summarize_run(tmp_path, None, None)
    assert s.headline is None and s.others is None and s.lines()[1].startswith("eval accuracy: 0.100")


def test_progress_on_a_terminal_draws_rich_live_bar_with_eta():
    out = io.StringIO()
    p = Progress(out, tty=True)
    p.update(view(5))
    p.message("stopping")
    p.update(view(6))
    p.close()
    text = out.getvalue()
    assert "\x1b[" in text  # a redrawn terminal display, not plain lines
    assert "6/10" in text and "ETA" in text and "reward 0.250" in text and "running" in text
    assert "stopping" in text and "[####" not in text
