"""Running the real learner service (`dashrl learner`) as a subprocess in tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from shared.keys import RunKeys
from shared.protocol import encode
from shared.streams import StreamWriter

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, *, run_id: str, model: Path, output_dir: Path, learner: dict | None = None,
                 algo: dict | None = None, streams: dict | None = None) -> Path:
    cfg = {
        "run_id": run_id, "output_dir": str(output_dir), "model": {"path": str(model)},
        # temperature 1, no top-k: the distribution the scripted rollouts' log-probs are taken under
        "sampler": {"sampling_batch_prompts": 4, "group_size": 4, "max_new_tokens": 8, "temperature": 1.0,
                    "top_k": -1},
        "learner": {"train_batch_size": 16, "micro_batch_size": 8, "micro_batch_tokens": 256, "lr": 1e-3,
                    "max_steps": 5, "checkpoint_every": 3, "max_staleness": 100, **(learner or {})},
        "algo": algo or {}, "streams": {"block_ms": 100, **(streams or {})},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def learner_cmd(config: Path, *extra: str, nproc: int = 1) -> list[str]:
    if nproc > 1:
        return [str(Path(sys.executable).parent / "torchrun"), "--standalone", f"--nproc_per_node={nproc}",
                "-m", "services.cli", "learner", str(config), *extra]
    return [sys.executable, "-m", "services.cli", "learner", str(config), *extra]


def start_learner(config: Path, redis_url: str, log_path: Path, *extra: str, nproc: int = 1) -> subprocess.Popen:
    env = {**os.environ, "DASHRL_REDIS_URL": redis_url, "DASHRL_METRICS_PORT": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    log = open(log_path, "ab")
    return subprocess.Popen(learner_cmd(config, *extra, nproc=nproc), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)



def write_batches(r, run_id: str, batches, max_backlog: int = 64) -> list[str]:
    keys = RunKeys(run_id)
    writer = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=max_backlog)
    for b in batches:
        writer.write(encode(b), timeout=60)
    return [b.batch_id for b in batches]
