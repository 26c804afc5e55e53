"""`dashrl control`: serve the control plane's API and dashboard with uvicorn.

Host and port come from DASHRL_CONTROL_HOST / DASHRL_CONTROL_PORT (or --host/--port); the
server refuses to listen beyond loopback without DASHRL_API_TOKEN.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import uvicorn
from fastapi import FastAPI

from services.control.app import create_app
from services.control.settings import ControlSettings, bind_error
from shared.config import Deployment


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = {k: v for k, v in (("control_host", args.host), ("control_port", args.port)) if v is not None}
    try:
        settings = ControlSettings.from_deployment(Deployment.from_env(), **overrides)
    except ValueError as err:
        print(f"dashrl control: {err}", file=sys.stderr)
        return 2
    problem = bind_error(settings)
    if problem:
        print(f"dashrl control: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(settings), host=settings.control_host, port=settings.control_port, log_level="info",
                timeout_graceful_shutdown=int(settings.stop_grace_s) + 30)
    return 0


class BackgroundServer:
    """uvicorn in a thread of this process (`dashrl run`): no signal handlers of its own."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="control-plane", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self, timeout_s: float = 30.0) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"control plane did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
