"""Bind rule: no token -> loopback only; deployment env -> settings."""

import pytest

from services.control.settings import ControlSettings, bind_error, is_loopback
from shared.config import Deployment


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                           ("10.0.0.5", False), ("example.com", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bind_error_needs_token_off_loopback():
    assert bind_error(ControlSettings(redis_url="redis://x", control_host="127.0.0.1")) is None
    assert "DASHRL_API_TOKEN" in bind_error(ControlSettings(redis_url="redis://x", control_host="0.0.0.0"))
    assert bind_error(ControlSettings(redis_url="redis://x", control_host="0.0.0.0", api_token="t" * 32)) is None
    assert "too short" in bind_error(ControlSettings(redis_url="redis://x", control_host="0.0.0.0", api_token="short"))


def test_from_deployment_reads_env():
    dep = Deployment.from_env({"DASHRL_REDIS_URL": "redis://h:1/0", "DASHRL_CONTROL_HOST": "0.0.0.0",
                               "DASHRL_CONTROL_PORT": "9000", "DASHRL_LAUNCHER": "workers",
                               "DASHRL_API_TOKEN": "x" * 20})
    s = ControlSettings.from_deployment(dep)
    assert (s.redis_url, s.control_host, s.control_port, s.launcher, s.api_token) == ("redis://h:1/0", "0.0.0.0", 9000, "workers", "x" * 20)
    with pytest.raises(ValueError, match="DASHRL_REDIS_URL"):
        ControlSettings.from_deployment(Deployment.from_env({}))


def test_settings_are_the_deployment_plus_control_knobs():
    """One declaration of each deployment value: ControlSettings adds only its own fields."""
    assert set(Deployment.model_fields) < set(ControlSettings.model_fields)
    assert set(ControlSettings.model_fields) - set(Deployment.model_fields) == {
        "max_body_bytes", "stop_grace_s", "reconcile_every_s"}
    with pytest.raises(ValueError, match="DASHRL_REDIS_URL"):
        ControlSettings()
