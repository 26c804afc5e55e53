"""The three trackers, each through its library's own client (imported on open, never at import):
torch.utils.tensorboard's SummaryWriter, mlflow's MlflowClient, and a wandb Run.

Every backend has the same four calls, run on its worker thread (`shared.tracking.worker`):
`open()`, `log(metrics, step, axis)`, `artifact(path)` (the final model folder), `close()`.
`axis` names the x-axis of the metrics (`learner/step`, `sampler/call`, `eval/policy_version`):
TensorBoard and MLflow take `step` per value; W&B gets the axis as its own metric
(`define_metric(..., step_metric=axis)`), since its own step must only grow within a run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from shared.tracking_config import MlflowTracker, TensorBoardTracker, WandbTracker

log = logging.getLogger(__name__)
MLFLOW_BATCH = 100  # MLflow's log_batch limit on params per call (and a sane size for metrics)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: a nested config as string params (lists stay one value)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(tree)}


def _fits(path: Path, limit_mb: float, kind: str) -> bool:
    size = folder_mb(path)
    if size > limit_mb:
        log.info("tracker %s: final model is %.0f MB > artifact_max_mb %.0f; not uploaded", kind, size, limit_mb)
    return size <= limit_mb


class TensorBoardBackend:
    kind = "tensorboard"

    def __init__(self, cfg: TensorBoardTracker, run_dir: Path, service: str, config: dict) -> None:
        self.cfg, self.config = cfg, config
        self.log_dir = Path(cfg.log_dir) / service if cfg.log_dir else run_dir / "tensorboard" / service
        self.writer: Any = None

    def open(self) -> None:
        import yaml
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=int(max(1, self.cfg.flush_s)))
        self.writer.add_text("config", "```yaml\n" + yaml.safe_dump(self.config, sort_keys=False) + "```", 0)

    def log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def artifact(self, path: Path) -> None:
        pass  # TensorBoard has no artifacts; the model stays in the run folder

    def close(self) -> None:
        self.writer.close()


class MlflowBackend:
    kind = "mlflow"

    def __init__(self, cfg: MlflowTracker, run_id: str, service: str, config: dict) -> None:
        self.cfg, self.run_name, self.service, self.config = cfg, f"{run_id}/{service}", service, config
        self.dashrl_run = run_id
        self.client: Any = None
        self.run_id: str | None = None

    def open(self) -> None:
        # MLflow reads these per request; its defaults (7 retries, backoff, 120 s timeout) would
        # keep a dead server's first failed call busy for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.cfg.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(self.cfg.http_timeout_s)))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.cfg.tracking_uri)
        exp = self.client.get_experiment_by_name(self.cfg.experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(self.cfg.experiment)
        run = self.client.create_run(exp_id, run_name=self.run_name,
                                     tags={"dashrl.run_id": self.dashrl_run, "dashrl.service": self.service})
        self.run_id = run.info.run_id
        params = [Param(k[:250], v[:6000]) for k, v in flatten(self.config).items()]
        for i in range(0, len(params), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + MLFLOW_BATCH])

    def log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(key, value, now, step) for key, value in metrics.items()]
        for i in range(0, len(rows), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=rows[i:i + MLFLOW_BATCH])

    def artifact(self, path: Path) -> None:
        if self.cfg.log_model and _fits(path, self.cfg.artifact_max_mb, self.kind):
            self.client.log_artifacts(self.run_id, str(path), artifact_path="final-model")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbBackend:
    kind = "wandb"

    def __init__(self, cfg: WandbTracker, run_dir: Path, run_id: str, service: str, config: dict) -> None:
        self.cfg, self.run_dir, self.dashrl_run, self.service, self.config = cfg, run_dir, run_id, service, config
        self.run: Any = None
        self._axes: set[str] = set()

    def open(self) -> None:
        import wandb

        folder = Path(self.cfg.dir) if self.cfg.dir else self.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.cfg.project, entity=self.cfg.entity, mode=self.cfg.mode, dir=str(folder),
            group=self.dashrl_run, job_type=self.service, name=f"{self.dashrl_run}-{self.service}",
            config=self.config, reinit="create_new",
            settings=wandb.Settings(init_timeout=self.cfg.init_timeout_s, console="off", silent=True))

    def log(self, metrics: dict[str, float], step: int, axis: str) -> None:
        if axis not in self._axes:
            self.run.define_metric(axis)
            self.run.define_metric(axis.split("/")[0] + "/*", step_metric=axis)
            self._axes.add(axis)
        self.run.log({**metrics, axis: step})

    def artifact(self, path: Path) -> None:
        import wandb

        if self.cfg.log_model and _fits(path, self.cfg.artifact_max_mb, self.kind):
            art = wandb.Artifact(f"{self.dashrl_run}-model", type="model")
            art.add_dir(str(path))
            self.run.log_artifact(art)

    def close(self) -> None:
        self.run.finish()
