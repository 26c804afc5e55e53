"""Arguments of the control plane's subcommands (`run`, `control`, `worker`), kept free of
heavy imports so that `dashrl --help` stays fast."""

from __future__ import annotations

import argparse

from shared.configio import add_config_args


def run_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--port", type=int, default=None,
                   help="dashboard/API port (default $DASHRL_CONTROL_PORT or 8000; a free one if taken)")


def control_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (default $DASHRL_CONTROL_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default $DASHRL_CONTROL_PORT or 8000)")


def worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", choices=("sampler", "learner"), required=True, help="which service this worker runs")
    p.add_argument("--name", default=None, help="consumer name (default: $DASHRL_WORKER_ID or the host name)")
    p.add_argument("--once", action="store_true", help="exit after one assignment (tests, batch jobs)")
    p.add_argument("--alive-file", default=None, metavar="PATH",
                   help="touch this file on every pass of the loop (for `dashrl probe --alive-file`)")
    p.add_argument("--stale-after-s", type=float, default=60.0, metavar="S",
                   help="claim an assignment whose worker has not refreshed it for this long (default 60)")
    p.add_argument("--nproc-per-node", default=None, metavar="N|gpu",
                   help="learner: start it under torchrun with N ranks here (`gpu`: one per visible GPU)")
    p.add_argument("--nnodes", type=int, default=None,
                   help="learner: nodes (workers) in one torchrun job (default $DASHRL_LEARNER_NODES or 1)")
    p.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                   help="learner, several nodes: torchrun rendezvous on node 0, e.g. dashrl-learner-0.dashrl-learner:29400")


def probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", action="append", default=[], metavar="URL", help="GET URL must answer 2xx (repeatable)")
    p.add_argument("--redis", action="store_true", help="Redis at $DASHRL_REDIS_URL must answer PING")
    p.add_argument("--alive-file", default=None, metavar="PATH", help="PATH must have been touched recently")
    p.add_argument("--max-age", type=float, default=60.0, metavar="S", help="--alive-file's age limit (default 60)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="per check (default 3)")


def submit_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--url", default=None,
                   help="control plane base URL (default http://127.0.0.1:$DASHRL_CONTROL_PORT)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="HTTP timeout (default 30)")


def _api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None,
                   help="control plane base URL (default http://127.0.0.1:$DASHRL_CONTROL_PORT)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="HTTP timeout (default 10)")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer as is")


def runs_args(p: argparse.ArgumentParser) -> None:
    _api_args(p)
    p.add_argument("--limit", type=int, default=100, help="newest runs to list (default 100)")


def status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id")
    _api_args(p)
