"""The `dashrl` command table: every entry names real functions, and a run imports only what
its own subcommand needs (`dashrl --help` imports no service and none of torch/vLLM)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "vllm", "transformers")


# `python -m services.cli ARGV`, then the names in sys.modules as the process exits (`-X importtime`
# would miss the table's importlib imports, which bypass the import statement's timing)
RUN_CLI = """import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES=" + json.dumps(sorted(sys.modules))))
sys.argv = ["dashrl", *sys.argv[1:]]
runpy.run_module("services.cli", run_name="__main__")
"""


def imported_by(*argv: str) -> set[str]:
    """The modules that `dashrl ARGV` imports (it must exit 0 after printing its usage)."""
    out = subprocess.run([sys.executable, "-c", RUN_CLI, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: dashrl" in out.stdout
    return set(json.loads(out.stdout.rsplit("MODULES=", 1)[1]))


def _defines(target: str) -> bool:
    module, func = target.split(":")
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_table_names_real_functions(name):
    cmd = COMMANDS[name]
    assert _defines(cmd.run), cmd.run
    assert _defines(cmd.arguments), cmd.arguments


@pytest.mark.process
def test_top_level_help_imports_no_service():
    mods = imported_by("--help")
    assert "shared.configio" in mods  # the exit-code contract's ConfigError: the import was seen
    services = sorted(m for m in mods if m.startswith("services.") and m != "services.cli")
    assert services == []
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


@pytest.mark.parametrize("name, loaded, not_loaded", [
    ("sampler", "shared.configio", "services.sampler"),
    ("learner", "services.learner.main", "services.learner.loop"),
])
@pytest.mark.process
def test_subcommand_help_imports_its_arguments_only(name, loaded, not_loaded):
    mods = imported_by(name, "--help")
    assert loaded in mods
    assert not [m for m in mods if m == not_loaded or m.startswith(not_loaded + ".")]
    assert not [m for m in mods if m.startswith("services.control")]  # another subcommand's
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


def test_every_subcommand_listed_and_parsed():
    for name in COMMANDS:
        assert name in build_parser([]).format_help()
    args = build_parser(["learner"]).parse_args(["learner", "c.yaml", "--set", "a=1", "--set", "b=2", "--resume"])
    assert (args.command, args.config, args.overrides, args.resume) == ("learner", "c.yaml", ["a=1", "b=2"], True)
    with pytest.raises(SystemExit):  # without its arguments added, a subcommand takes none
        build_parser([]).parse_args(["learner", "c.yaml"])


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_config_error_is_one_line_exit_2(tmp_path, capsys):
    assert main(["config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dashrl config: config error: ") and err.count("\n") == 1
