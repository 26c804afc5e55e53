"""Resumable checkpoints: `run_dir/checkpoints/step-N/`, written atomically.

A checkpoint holds the model (a Hugging Face folder, so resuming is just loading it), the
tokenizer, the optimizer and scheduler state, RNG states, and `state.json` with the step,
the policy version and the batch ids it has consumed (the ledger's committed set). It is
written into `.tmp-step-N/`, fsynced and renamed, so `step-N/` is always complete; the newest
complete one is what `--resume` loads. Only the newest `keep` are kept. With
`learner.parallel: fsdp` the model and AdamW state are `dcp/` instead: every rank's shards,
written by torch.distributed.checkpoint into the same folder (so every rank must see the run
folder), resumable with any number of FSDP ranks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from shared.weights import fsync_path


@dataclass
class LearnerState:
    step: int = 0
    """Optimizer steps committed (one step = one gathered batch; PPO may run several updates)."""
    policy_version: int = 0
    """Version of the weights this checkpoint holds (0: the starting model)."""
    committed: list[str] = field(default_factory=list)
    """Batch ids trained or skipped up to this step (the newest, bounded)."""
    last_published: int = 0
    """Newest version published before this checkpoint."""


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = checkpoint_root(run_dir)
    if not root.exists():
        return []
    found = [(int(p.name[5:]), p) for p in root.iterdir()
             if p.name.startswith("step-") and p.name[5:].isdigit() and (p / "state.json").exists()]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: Path, model: Any, tokenizer: Any, trainer_state: dict[str, Any],
                    state: LearnerState, keep: int = 2, write_model: Callable[[Path], None] | None = None) -> Path:
    """`write_model(folder)` instead of `model/` (a Hugging Face folder): a sharded model's
    collective DCP save into `folder/dcp/` (`fsdp.ShardedPolicy.write`); no tokenizer then."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / f"step-{state.step}", root / f".tmp-step-{state.step}"
    if (final / "state.json").exists():
        # committed again at the same step (skipped entries only): the model, optimizer and RNG
        # are unchanged; replace state.json atomically rather than the folder (never a moment
        # without a complete newest checkpoint)
        part = final / "state.json.tmp"
        part.write_text(json.dumps(asdict(state)))
        fsync_path(part)
        os.replace(part, final / "state.json")
        return final
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if write_model is not None:
        write_model(tmp)
    else:
        model.save_pretrained(tmp / "model", safe_serialization=True)
    if tokenizer is not None and write_model is None:
        tokenizer.save_pretrained(tmp / "model")
    torch.save({"trainer": trainer_state, "rng": _rng_state()}, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)))
    for p in tmp.rglob("*"):
        fsync_path(p)
    fsync_path(tmp)
    shutil.rmtree(final, ignore_errors=True)  # a folder without state.json: an incomplete leftover
    os.rename(tmp, final)
    fsync_path(root)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        doomed = root / f".del-{old.name}"
        os.rename(old, doomed)  # first out of sight, so a half-deleted folder is never "complete"
        shutil.rmtree(doomed, ignore_errors=True)
    return final


def load_checkpoint(path: Path, device: torch.device) -> tuple[Path | None, dict[str, Any], LearnerState]:
    """(model folder to load the policy from, trainer state, learner state); restores RNGs. The
    folder is None for a sharded checkpoint: load the starting model, shard it, then `dcp/` into it."""
    blob = torch.load(path / "trainer.pt", map_location=device, weights_only=True)
    _set_rng_state(blob["rng"])
    state = LearnerState(**json.loads((path / "state.json").read_text()))
    return (path / "model" if (path / "model").is_dir() else None), blob["trainer"], state


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
