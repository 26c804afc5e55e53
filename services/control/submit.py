"""`dashrl submit CONFIG [--set k=v ...] [--url URL]`: start a run on a running control plane.

Validates the config here first (a bad key fails with the usual one-line config error, exit 2),
then POSTs it to `URL/v1/runs` with `Authorization: Bearer $DASHRL_API_TOKEN` and prints the new
run's id. What the dashboard's "start" does, and what `curl -X POST .../v1/runs` does, from a
YAML file (compose: `docker compose exec control dashrl submit ...`; Kubernetes: a Job).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from shared.config import Deployment
from shared.configio import load_config


def default_url(dep: Deployment) -> str:
    host = "127.0.0.1" if dep.control_host in ("0.0.0.0", "::", "") else dep.control_host
    return f"http://{host}:{dep.control_port}"


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    dep = Deployment.from_env()
    url = (args.url or default_url(dep)).rstrip("/") + "/v1/runs"
    headers = {"Content-Type": "application/json"}
    if dep.api_token:
        headers["Authorization"] = f"Bearer {dep.api_token}"
    body = json.dumps(cfg.model_dump(mode="json", exclude_none=True)).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as resp:  # noqa: S310
            created = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        print(f"dashrl submit: {url}: HTTP {err.code}: {err.read().decode(errors='replace')[:500]}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as err:
        print(f"dashrl submit: {url}: {getattr(err, 'reason', err)}", file=sys.stderr)
        return 1
    print(created["id"])
    return 0
