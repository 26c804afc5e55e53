"""A run's folder: where it is (`run_dir`, the one copy of that rule), which model folder a MODEL
argument means, and the run's record (config, steps, evals), for `dashrl eval` and `dashrl export`.

A MODEL argument may be any Hugging Face model folder, or a place in a run folder
(`<output_dir>/<run_id>/`, layout in docs/architecture.md):
- the run folder itself: its `final/` model;
- `final/`, a weight version `weights/vN/` (the fs weight store), a checkpoint `checkpoints/step-N/`
  (its `model/` subfolder).
Torch-free: this module only looks at files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import RunConfig
from shared.configio import ConfigError


@dataclass(frozen=True)
class ModelRef:
    path: Path
    """The Hugging Face folder to load."""
    run_dir: Path | None
    """The run folder it belongs to (None: a plain model folder)."""
    version: int
    """The policy version it holds (0: the starting model or a plain folder)."""
    label: str
    """How it is named in tables: `final`, `v12`, `step-20`, or the folder's name."""


def run_dir(cfg: RunConfig, run_id: str | None = None) -> Path:
    """The folder of run `run_id` (default: the config's): `<output_dir>/<run_id>/`. Raises
    ConfigError when there is no run id."""
    run_id = run_id or cfg.run_id
    if not run_id:
        raise ConfigError("run_id: required (set it with --set run_id=...)")
    return Path(cfg.output_dir) / run_id


def _is_model(p: Path) -> bool:
    return (p / "config.json").is_file()


def _run_of(p: Path) -> Path | None:
    return p if (p / "config.yaml").is_file() else None


def resolve_model(arg: str | Path) -> ModelRef:
    """The model folder `arg` names (see the module doc). Raises ConfigError."""
    p = Path(arg)
    if not p.exists():
        raise ConfigError(f"{p}: no such model folder or run")
    if _run_of(p) and not _is_model(p):  # a run folder: its final model
        if not _is_model(p / "final"):
            raise ConfigError(f"{p}: run has no final/ model (not finished); name a weights/vN or "
                              "checkpoints/step-N folder")
        return ModelRef(p / "final", p, last_version(p), "final")
    if p.parent.name == "checkpoints" and _is_model(p / "model"):
        state = json.loads((p / "state.json").read_text()) if (p / "state.json").is_file() else {}
        return ModelRef(p / "model", _run_of(p.parent.parent), int(state.get("policy_version", 0)), p.name)
    if not _is_model(p):
        raise ConfigError(f"{p}: not a Hugging Face model folder (no config.json)")
    if p.parent.name == "weights" and p.name[1:].isdigit():
        return ModelRef(p, _run_of(p.parent.parent), int(p.name[1:]), p.name)
    if p.name == "final" and _run_of(p.parent):
        return ModelRef(p, p.parent, last_version(p.parent), "final")
    return ModelRef(p, None, 0, p.name)


def version_folder(run_dir: Path, version: int) -> Path:
    """The model folder of policy version `version` of a run: `weights/vN/`, else the checkpoint
    holding it. Raises ConfigError listing what the run has."""
    w = run_dir / "weights" / f"v{version}"
    if _is_model(w):
        return w
    for ck in sorted((run_dir / "checkpoints").glob("step-*")):
        state = ck / "state.json"
        if state.is_file() and json.loads(state.read_text()).get("policy_version") == version:
            return ck / "model"
    have = sorted(int(d.name[1:]) for d in (run_dir / "weights").glob("v*") if d.name[1:].isdigit())
    raise ConfigError(f"{run_dir}: version {version} is neither in weights/ (has {have}) nor in a checkpoint")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of `path` ([] when absent); a torn last line (a run still writing) is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def last_version(run_dir: Path) -> int:
    """The learner's newest policy version recorded in metrics.jsonl (0 when none)."""
    steps = read_jsonl(run_dir / "metrics.jsonl")
    return max((int(s.get("policy_version", s.get("step", 0))) for s in steps), default=0)


def last_step(run_dir: Path) -> int:
    """The learner's newest optimizer step recorded in metrics.jsonl (0 when none)."""
    return max((int(s.get("step", 0)) for s in read_jsonl(run_dir / "metrics.jsonl")), default=0)
