"""`dashrl config CONFIG [--set k=v]`: validate a run config and print it fully resolved."""

from __future__ import annotations

import argparse

from shared.configio import dump_config, load_config


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    print(dump_config(cfg), end="")
    return 0
