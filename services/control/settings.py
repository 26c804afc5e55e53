"""The control plane's settings, built from the environment (`shared.config.Deployment`).

Owns the one safety rule about binding: a control plane reachable from other hosts must have
an API token; without one it may only listen on loopback.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.config import Deployment


class ControlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str
    api_token: str | None = None
    """Bearer token for mutating routes; None is allowed on loopback only."""
    host: str = "127.0.0.1"
    port: int = 8000
    launcher: Literal["local", "workers"] = "local"
    learner_nodes: int = Field(default=1, ge=1)
    """`workers` launcher: learner assignments per run (one per learner node)."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    """Request bodies larger than this are refused with 413."""
    stop_grace_s: float = Field(default=120.0, gt=0)
    """After a stop, services still running this long are terminated (local launcher)."""
    reconcile_every_s: float = Field(default=2.0, gt=0)
    """How often run states are re-derived and dashboard samples recorded."""

    @classmethod
    def from_deployment(cls, dep: Deployment, **overrides: object) -> "ControlSettings":
        if not dep.redis_url:
            raise ValueError("DASHRL_REDIS_URL is not set (the control plane keeps its runs in Redis)")
        values = dict(redis_url=dep.redis_url, api_token=dep.api_token, host=dep.control_host,
                      port=dep.control_port, launcher=dep.launcher, learner_nodes=dep.learner_nodes)
        values.update(overrides)
        return cls(**values)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_error(settings: ControlSettings) -> str | None:
    """Why the server must not start with these settings, or None."""
    if settings.api_token is None and not is_loopback(settings.host):
        return (f"refusing to listen on {settings.host} without an API token: set DASHRL_API_TOKEN, "
                "or bind to loopback (DASHRL_CONTROL_HOST=127.0.0.1)")
    if settings.api_token is not None and len(settings.api_token) < 16:
        return "DASHRL_API_TOKEN is too short (use at least 16 characters, e.g. `openssl rand -hex 24`)"
    return None
