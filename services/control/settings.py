"""The control plane's settings: the deployment values read from the environment
(`shared.deployment.Deployment`, declared there once) plus the control plane's own knobs.

Owns the one safety rule about binding: a control plane reachable from other hosts must have
an API token; without one it may only listen on loopback.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from shared.deployment import Deployment

NO_REDIS = "DASHRL_REDIS_URL is not set (the control plane keeps its runs in Redis)"


class ControlSettings(Deployment):
    """The deployment values (`shared.deployment.Deployment`: Redis URL, API token, host, port,
    launcher, learner nodes) plus the control plane's own knobs; a Redis URL is required."""

    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    """Request bodies larger than this are refused with 413."""
    stop_grace_s: float = Field(default=120.0, gt=0)
    """After a stop, services still running this long are terminated (local launcher)."""
    reconcile_every_s: float = Field(default=2.0, gt=0)
    """How often run states are re-derived and dashboard samples recorded."""

    @model_validator(mode="after")
    def _needs_redis(self) -> "ControlSettings":
        if not self.redis_url:
            raise ValueError(NO_REDIS)
        return self

    @classmethod
    def from_deployment(cls, dep: Deployment, **overrides: object) -> "ControlSettings":
        """`dep`'s values with `overrides` (field names, e.g. control_port=9000) on top."""
        if not dep.redis_url:
            raise ValueError(NO_REDIS)
        return cls.model_validate({**dep.model_dump(), **overrides})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_error(settings: ControlSettings) -> str | None:
    """Why the server must not start with these settings, or None."""
    if settings.api_token is None and not is_loopback(settings.control_host):
        return (f"refusing to listen on {settings.control_host} without an API token: set DASHRL_API_TOKEN, "
                "or bind to loopback (DASHRL_CONTROL_HOST=127.0.0.1)")
    if settings.api_token is not None and len(settings.api_token) < 16:
        return "DASHRL_API_TOKEN is too short (use at least 16 characters, e.g. `openssl rand -hex 24`)"
    return None
