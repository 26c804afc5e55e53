"""Registers each service's subcommands with the CLI (arguments only; work is imported lazily).

Add a subcommand here with `register(name, "module:function", help, add_arguments)`.
"""

from __future__ import annotations

from services.cli import _add_config_args, register  # noqa: F401
