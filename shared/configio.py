"""Loading run configs: defaults < YAML file < `--set a.b=c` overrides.

Owns turning user input into a validated `RunConfig`, and turning every way that can fail
(missing file, bad YAML, unknown key, wrong type, inconsistent combination) into one
`ConfigError` whose message is a single line naming the file and the key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.config import RunConfig


class ConfigError(ValueError):
    """A config that cannot be used; `str(err)` is one line naming the key and the problem."""


def add_set_argument(p: argparse.ArgumentParser, example: str = "learner.lr=1e-4") -> None:
    """`--set KEY=VALUE` (repeatable) into `args.overrides`, for `load_config`."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config value, e.g. --set {example} (repeatable)")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The run config arguments most subcommands take: `CONFIG [--set KEY=VALUE ...]`."""
    p.add_argument("config", help="run config YAML")
    add_set_argument(p)


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (["a", "b"], value parsed as a YAML scalar)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. learner.lr=1e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {item!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b=c` override set (intermediate dicts created)."""
    out = _deep_copy(data)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise ConfigError(f"{p}: cannot read: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    """One line: `source: key.path: problem` for the first error (+N more)."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p))
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # Cross-field validators name their own key as "key: problem".
        if ": " in msg:
            field, _, rest = msg.partition(": ")
            loc = f"{loc}.{field}" if loc else field
            msg = rest
    if first["type"] not in ("extra_forbidden", "missing", "value_error") and "input" in first:
        msg = f"{msg} (got {first['input']!r})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {loc or '<root>'}: {msg}{more}"


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions insert the tag value ("reasoning_gym") into error locations.
    return part in ("reasoning_gym", "jsonl")


def validate(data: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults < YAML at `path` (optional) < overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    return validate(data, str(path) if path is not None else "config")


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (written into every run folder)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
