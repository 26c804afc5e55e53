"""Reading compose.yaml the way Docker Compose does, without Docker: YAML with Compose's own tags
(`!override`, `!reset`), `.env` files, and `${VAR}` interpolation (defaults, required values).

Owns only what the deploy tests need; the schema check itself is the compose-spec JSON schema
that the check-jsonschema package ships.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $NAME, $$
_TOKEN = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


class InterpolationError(ValueError):
    """A required variable is missing, or a `${...}` is malformed."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution on one string (nested `${A:-${B}}` included)."""

    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        spec = _BRACED.match(m.group("braced"))
        if spec is None:
            raise InterpolationError(f"invalid interpolation: ${{{m.group('braced')}}}")
        name, op, arg = spec.group("name"), spec.group("op"), spec.group("arg") or ""
        value, unset_or_empty = env.get(name), not env.get(name)
        if op is None:
            return value or ""
        missing = unset_or_empty if op.startswith(":") else value is None
        if op.endswith("-"):
            return interpolate(arg, env) if missing else value
        if op.endswith("?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {interpolate(arg, env)}")
            return value
        return "" if missing else interpolate(arg, env)  # ":+" / "+"

    return _TOKEN.sub(sub, _resolve_nested(text, env))


def _resolve_nested(text: str, env: Mapping[str, str]) -> str:
    """Resolve innermost `${...}` inside a default first, so the outer regex sees no nested braces."""
    inner = re.compile(r"(\$\{[^{}]*:?[-?+][^{}]*)(\$\{[^{}]*\})")
    while inner.search(text):
        text = inner.sub(lambda m: m.group(1) + interpolate(m.group(2), env).replace("$", "$$"), text, count=1)
    return text


def interpolate_all(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_all(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_all(v, env) for k, v in node.items()}
    return node


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader plus Compose's merge-control tags (their values load as plain values)."""


def _tagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_multi_constructor("!override", _tagged)  # replaces instead of merging
_ComposeLoader.add_multi_constructor("!reset", lambda _loader, _suffix, _node: None)  # removes the value


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments and blank lines skipped; surrounding quotes removed."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip().strip("'\"")
    return env


def example_env(**overrides: str) -> dict[str, str]:
    """.env.example with its empty secrets filled in (as a user's .env would be)."""
    env = read_env_file(ENV_EXAMPLE)
    filled = {"REDIS_PASSWORD": "r" * 32, "DASHRL_API_TOKEN": "t" * 32, "GRAFANA_ADMIN_PASSWORD": "g" * 16}
    env.update({k: v for k, v in filled.items() if not env.get(k)})
    env.update(overrides)
    return env


def load_compose(path: Path = COMPOSE, env: Mapping[str, str] | None = None) -> dict:
    """The file as Compose sees it after interpolation (anchors and `<<` merges resolved)."""
    raw = yaml.load(path.read_text(), Loader=_ComposeLoader)  # noqa: S506 (SafeLoader subclass)
    return interpolate_all(raw, example_env() if env is None else env)


def active_services(doc: dict, profiles: set[str]) -> dict[str, dict]:
    """Services started with these profiles (a service without `profiles` always starts)."""
    return {name: svc for name, svc in doc["services"].items()
            if not svc.get("profiles") or set(svc["profiles"]) & profiles}


def compose_schema() -> dict:
    """The compose-spec JSON schema vendored by check-jsonschema (no download)."""
    from importlib.resources import files

    return json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())


def is_dashrl_service(svc: dict) -> bool:
    """Built from this repository's Dockerfile (so its command is a `dashrl` subcommand)."""
    build = svc.get("build")
    return build is not None or str(svc.get("image", "")).split("/")[-1].startswith("${DASHRL_IMAGE")
