"""The model card (README.md) of an exported run: what a reader of the folder needs to know
where the weights came from — the run, the dashrl version, the steps trained, the eval results
(eval.jsonl) and the resolved config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.run_folder import last_step, read_jsonl


def dashrl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dashrl")
    except PackageNotFoundError:
        return "unknown"


def eval_table(rows: list[dict[str, Any]], version: int) -> str:
    """Markdown table of every eval at the first evaluated version and the newest one at or
    before `version` (the start and what the exported weights reached)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if int(r.get("version", 0)) <= version:
            by_name.setdefault(r["name"], []).append(r)
    if not by_name:
        return "No eval results recorded (eval.jsonl is empty or absent).\n"
    ks = sorted({int(k) for r in rows for k in r.get("pass_at_k", {})})
    head = "| eval | version | problems | greedy accuracy | " + " | ".join(f"pass@{k}" for k in ks) + " |"
    lines = [head, "|" + "---|" * (4 + len(ks))]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for name, evs in by_name.items():
        evs = sorted(evs, key=lambda r: r["version"])
        for r in ([evs[0], evs[-1]] if len(evs) > 1 else evs):
            cells = [name, str(r["version"]), str(r["num_problems"]), fmt(r.get("greedy_accuracy"))]
            cells += [fmt(r.get("pass_at_k", {}).get(str(k))) for k in ks]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def model_card(run_dir: Path, *, version: int, source: str, dtype: str) -> str:
    """README.md text for the export of `run_dir` at `version` (weights taken from `source`)."""
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    cfg = yaml.safe_load(config_text) or {}
    base = (cfg.get("model") or {}).get("path", "unknown")
    steps = [s for s in read_jsonl(run_dir / "metrics.jsonl") if int(s.get("policy_version", 0)) <= version]
    step = max((int(s.get("step", 0)) for s in steps), default=0) if steps else last_step(run_dir)
    front = {"library_name": "transformers", "tags": ["dashrl", "reinforcement-learning", "grpo"]}
    return "\n".join([
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {run_dir.name} (dashrl export)", "",
        f"Policy trained with dashrl {dashrl_version()} (DASH: asynchronous RL for "
        "reasoning LMs). Plain Hugging Face folder: load it with `AutoModelForCausalLM.from_pretrained`.", "",
        "| | |", "|---|---|",
        f"| run | `{run_dir.name}` |", f"| starting model | `{base}` |",
        f"| policy version | {version} |", f"| optimizer steps | {step} |",
        f"| weights from | `{source}` |", f"| dtype | {dtype} |",
        f"| dashrl version | {dashrl_version()} |", "",
        "## Eval results", "", eval_table(read_jsonl(run_dir / "eval.jsonl"), version),
        "## Run config", "", "```yaml", config_text.rstrip(), "```", "",
    ])
