"""Deployment values of a service, read from the environment only (never from a run config):
Redis URL and password, the API token, ports, the data folder, the launcher. Re-exported by
`shared.config`."""

from __future__ import annotations

import os
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Deployment(BaseModel):
    """Deployment values, read from the environment only (never from a run config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None
    """DASHRL_REDIS_URL; None means the local runner starts an embedded Redis."""
    api_token: str | None = None
    """DASHRL_API_TOKEN: bearer token for the control plane's mutating routes."""
    control_host: str = "127.0.0.1"
    """DASHRL_CONTROL_HOST."""
    control_port: int = 8000
    """DASHRL_CONTROL_PORT."""
    metrics_port: int = 0
    """DASHRL_METRICS_PORT: a service's Prometheus port (0: pick a free one)."""
    data_dir: str = "data"
    """DASHRL_DATA_DIR: cached models and datasets, shared weight store root."""
    launcher: Literal["local", "workers"] = "local"
    """DASHRL_LAUNCHER: how the control plane starts a run's services. local: child processes
    of the control plane; workers: a RunAssignment for long-running `dashrl worker`s."""
    redis_password: str | None = None
    """DASHRL_REDIS_PASSWORD: put into `redis_url` when the URL carries none, so that a secret
    (compose `.env`, a Kubernetes Secret) need not be spliced into the URL."""
    worker_id: str | None = None
    """DASHRL_WORKER_ID: a `dashrl worker`'s consumer name (default: the host name)."""
    learner_nodes: int = Field(default=1, ge=1)
    """DASHRL_LEARNER_NODES: learner workers (nodes) that join one run through torchrun; the
    `workers` launcher publishes one learner assignment per node."""

    ENV: ClassVar[dict[str, str]] = {
        "redis_url": "DASHRL_REDIS_URL",
        "api_token": "DASHRL_API_TOKEN",
        "control_host": "DASHRL_CONTROL_HOST",
        "control_port": "DASHRL_CONTROL_PORT",
        "metrics_port": "DASHRL_METRICS_PORT",
        "data_dir": "DASHRL_DATA_DIR",
        "launcher": "DASHRL_LAUNCHER",
        "redis_password": "DASHRL_REDIS_PASSWORD",
        "worker_id": "DASHRL_WORKER_ID",
        "learner_nodes": "DASHRL_LEARNER_NODES",
    }

    @model_validator(mode="after")
    def _password_into_url(self) -> "Deployment":
        if self.redis_url and self.redis_password:
            object.__setattr__(self, "redis_url", with_redis_password(self.redis_url, self.redis_password))
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Deployment":
        env = os.environ if environ is None else environ
        values = {field: env[var] for field, var in cls.ENV.items() if env.get(var)}
        return cls(**values)


def with_redis_password(url: str, password: str) -> str:
    """`url` with `password` as its credentials, unless it already has a password.
    `redis://host:6379/0` -> `redis://:PASSWORD@host:6379/0` (the password percent-encoded)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.password:
        return url  # unix:// URLs take `?password=`; an explicit password wins
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
