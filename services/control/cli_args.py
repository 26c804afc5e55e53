"""Arguments of the control plane's subcommands (`run`, `control`, `worker`), kept free of
heavy imports so that `dashrl --help` stays fast."""

from __future__ import annotations

import argparse

from services.cli import _add_config_args


def run_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p)
    p.add_argument("--port", type=int, default=None,
                   help="dashboard/API port (default $DASHRL_CONTROL_PORT or 8000; a free one if taken)")


def control_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (default $DASHRL_CONTROL_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default $DASHRL_CONTROL_PORT or 8000)")


def worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", choices=("sampler", "learner"), required=True, help="which service this worker runs")
    p.add_argument("--name", default=None, help="consumer name (default: $DASHRL_WORKER_ID or the host name)")
    p.add_argument("--once", action="store_true", help="exit after one assignment (tests, batch jobs)")
