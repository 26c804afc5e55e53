"""The `dashrl` command line: one entry point, a subcommand per job.

Owns argument parsing and the exit-code contract only: a `ConfigError` anywhere becomes one
line on stderr and exit code 2, with no traceback. Each subcommand's work lives in its service
package and is imported lazily, so `dashrl --help` and the control plane start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable

from shared.configio import ConfigError

# subcommand -> (module:function taking the parsed args and returning an exit code, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("services.config_cmd:main", "validate a run config and print it resolved"),
}


def _add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?", help="run config YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set learner.lr=1e-4 (repeatable)")


def _config_args(p: argparse.ArgumentParser) -> None:
    from services.config_cmd import add_arguments  # the config file + --estimate and its options

    add_arguments(p)


ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "config": _config_args,
}


def register(name: str, target: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add a subcommand (services call this from services/commands.py)."""
    COMMANDS[name] = (target, help_text)
    ARGUMENTS[name] = add_args


def build_parser() -> argparse.ArgumentParser:
    import services.commands  # noqa: F401  (registers the service subcommands)

    parser = argparse.ArgumentParser(prog="dashrl", description="DASH reinforcement learning for reasoning LMs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_target, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        ARGUMENTS[name](p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module, func = COMMANDS[args.command][0].split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except ConfigError as err:
        print(f"dashrl {args.command}: config error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m services.cli`: run the importable module's main, whose registry
    # services/commands.py fills (this file runs as `__main__`, a second copy).
    from services.cli import main as _main

    sys.exit(_main())
