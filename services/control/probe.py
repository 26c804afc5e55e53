"""`dashrl probe`: the health check that the image, the compose services and the Kubernetes
probes run, so that every one of them is a real `dashrl` subcommand.

Each check named on the command line must pass; the first failure is printed on one line and the
exit code is 1. Standard library and redis-py only: it runs every few seconds in every container.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shared.config import Deployment


def check_http(url: str, timeout_s: float) -> str | None:
    """None when GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (a URL we were given)
            return None if 200 <= resp.status < 300 else f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return f"{url}: HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{url}: {getattr(err, 'reason', err)}"


def check_redis(redis_url: str | None, timeout_s: float) -> str | None:
    """None when Redis at `redis_url` (with DASHRL_REDIS_PASSWORD applied) answers PING."""
    if not redis_url:
        return "DASHRL_REDIS_URL is not set"
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client.ping()
        client.close()
        return None
    except redis.RedisError as err:
        return f"redis: {type(err).__name__}: {err}"


def check_alive_file(path: Path, max_age_s: float, now: float | None = None) -> str | None:
    """None when `path` was touched within `max_age_s` (a worker's loop touches it)."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return f"{path}: missing (the worker has not started its loop)"
    return None if age <= max_age_s else f"{path}: last touched {age:.0f}s ago (limit {max_age_s:.0f}s)"


def main(args: argparse.Namespace) -> int:
    if not (args.http or args.redis or args.alive_file):
        print("dashrl probe: name at least one check (--http URL, --redis, --alive-file PATH)", file=sys.stderr)
        return 2
    problems = [check_http(url, args.timeout) for url in args.http]
    if args.redis:
        problems.append(check_redis(Deployment.from_env().redis_url, args.timeout))
    if args.alive_file:
        problems.append(check_alive_file(Path(args.alive_file), args.max_age))
    failed = [p for p in problems if p]
    if failed:
        print(f"dashrl probe: {failed[0]}", file=sys.stderr)
        return 1
    return 0
