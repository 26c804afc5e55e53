"""Typed config of the experiment trackers (`tracking:` in a run config): TensorBoard, MLflow, W&B.

Owns the schema only; `shared.tracking` builds the trackers. `tracking` is a list, so several
trackers log the same run at once; each entry is tagged by `kind`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config_base import Strict, tagged_union


class TrackerCommon(Strict):
    queue_size: int = Field(default=1000, ge=1)
    """Records waiting for the tracker's background thread; when full, new records are dropped
    (and counted) instead of blocking a training step."""
    close_timeout_s: float = Field(default=120.0, gt=0)
    """At the end of a service, how long to wait for queued records and the final artifact."""


class TensorBoardTracker(TrackerCommon):
    kind: Literal["tensorboard"] = "tensorboard"
    """TensorBoard event files (torch.utils.tensorboard's SummaryWriter)."""
    log_dir: str | None = None
    """Folder of the event files, one subfolder per service; None: `<run folder>/tensorboard`."""
    flush_s: float = Field(default=10.0, gt=0)
    """Seconds between flushes of the event file."""


class MlflowTracker(TrackerCommon):
    kind: Literal["mlflow"] = "mlflow"
    """MLflow tracking: one MLflow run per service, tagged `dashrl.run_id`."""
    tracking_uri: str = "mlruns"
    """A server URL (http://host:5000) or a local folder (file store)."""
    experiment: str = "dashrl"
    """MLflow experiment name (created when missing)."""
    log_model: bool = True
    """Upload the final model folder as the learner run's artifact `final-model`."""
    artifact_max_mb: float = Field(default=2048.0, ge=0)
    """Skip the model artifact (with a log line) when the folder is larger than this."""
    http_timeout_s: float = Field(default=10.0, gt=0)
    """Per-request timeout (MLFLOW_HTTP_REQUEST_TIMEOUT; MLflow's default is 120 s)."""
    http_retries: int = Field(default=1, ge=0)
    """Retries per request (MLFLOW_HTTP_REQUEST_MAX_RETRIES; MLflow's default of 7 with
    exponential backoff holds a dead server for minutes). Both are process-wide environment
    variables: set from the first MLflow tracker, and an environment value already set wins."""


class WandbTracker(TrackerCommon):
    kind: Literal["wandb"] = "wandb"
    """Weights & Biases: one W&B run per service, grouped by the dashrl run id."""
    project: str = "dashrl"
    """W&B project."""
    entity: str | None = None
    """W&B entity (user or team); None: the API key's default."""
    mode: Literal["online", "offline"] = "online"
    """online: stream to the W&B server (needs WANDB_API_KEY); offline: write a run folder under
    `dir` that `wandb sync` uploads later."""
    dir: str | None = None
    """Folder under which W&B writes `wandb/`; None: the run folder."""
    log_model: bool = True
    """Log the final model folder as the learner run's artifact (type `model`)."""
    artifact_max_mb: float = Field(default=2048.0, ge=0)
    """Skip the model artifact (with a log line) when the folder is larger than this."""
    init_timeout_s: float = Field(default=60.0, gt=0)
    """How long `wandb.init` may take before the tracker gives up (counted as an error)."""


TrackerConfig = tagged_union(TensorBoardTracker, MlflowTracker, WandbTracker)
