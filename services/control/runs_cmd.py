"""`dashrl runs` and `dashrl status RUN`: the HTTP API's run list and run view on the command line.

Both GET from a running control plane (`--url`, default as `dashrl submit`), sending
`Authorization: Bearer $DASHRL_API_TOKEN` when set; `--json` prints the API's answer as is,
else it is read into the API's own models (`RunView`) and printed from their fields.
Exit codes: 0 shown, 1 the control plane could not be reached or answered an error (404: no
such run), each as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from services.control.status import RunView
from shared.config import Deployment


class ApiError(Exception):
    pass


def get_json(args: argparse.Namespace, path: str) -> Any:
    from services.control.submit import default_url

    dep = Deployment.from_env()
    url = (args.url or default_url(dep)).rstrip("/") + path
    headers = {"Authorization": f"Bearer {dep.api_token}"} if dep.api_token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=args.timeout) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise ApiError(f"{url}: HTTP {err.code}: {err.read().decode(errors='replace')[:300]}") from None
    except (urllib.error.URLError, OSError) as err:
        raise ApiError(f"{url}: {getattr(err, 'reason', err)}") from None


def _f(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _steps(v: RunView) -> str:
    return f"{v.learner_step or 0}/{v.max_steps or '?'}"


def _print_table(columns: list[str], rows: list[list[str]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*row)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def runs_main(args: argparse.Namespace) -> int:
    try:
        listing = get_json(args, f"/v1/runs?limit={args.limit}")
    except ApiError as err:
        print(f"dashrl runs: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    rows = [[v.id, v.state, _steps(v), _f(v.reward_mean), _f(v.eval_accuracy), _f(v.tokens_per_s.sampler, ".0f"),
             v.stop_reason or ""] for v in map(RunView.model_validate, listing["runs"])]
    if not rows:
        print("no runs")
        return 0
    _print_table(["RUN", "STATE", "STEP", "REWARD", "ACC", "SAMPLER TOK/S", "STOP REASON"], rows)
    return 0


def status_main(args: argparse.Namespace) -> int:
    try:
        view = get_json(args, f"/v1/runs/{urllib.parse.quote(args.run, safe='')}")
    except ApiError as err:
        print(f"dashrl status: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    _print_status(RunView.model_validate(view))
    return 0


def _print_status(view: RunView) -> None:
    tps = view.tokens_per_s
    print(f"run {view.id}: {view.state}" + (f" ({view.stop_reason})" if view.stop_reason else ""))
    print(f"  step {_steps(view)}, policy version {_f(view.policy_version, 'd')}, samples {_f(view.samples, 'd')}")
    print(f"  reward {_f(view.reward_mean)}, kept {_f(view.kept_fraction)}, "
          f"staleness {_f(view.staleness, '.2f')}, queue {_f(view.queue_depth, 'd')}")
    print(f"  tok/s sampler {_f(tps.sampler, '.0f')}, learner {_f(tps.learner, '.0f')}")
    for name, acc in view.evals.items():
        print(f"  eval {name}: {acc:.3f}")
    if view.failure:
        fail = view.failure
        print(f"  failed: {fail.service} (exit {fail.exit_code})\n{fail.log_tail}")
    if view.run_dir:
        print(f"  folder {view.run_dir}")
    if view.services:
        _print_table(["SERVICE", "INSTANCE", "STATE", "AGE S"],
                     [[s.service, s.instance_id, s.state + (" (stale)" if s.stale else ""), _f(s.age_s, ".1f")]
                      for s in view.services])
