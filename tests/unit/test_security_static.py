"""Security rules checked on the source and on the reward loader (no processes needed).

- No pickle, marshal, eval, exec, unsafe YAML or pickle-backed torch.load anywhere in shared/ or
  services/ (an AST scan, so comments and strings don't count and aliases can't hide a call).
- Dynamic imports only where a fixed table or the reward allow-list guards them.
- The bearer-token check compares in constant time.
- A config-named reward function outside the allow-list is refused before it is imported.
"""

import ast
import sys
from pathlib import Path

import pytest

from services.sampler.rewards import check_allowed, reward_spec
from shared.config import TaskConfig
from shared.configio import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("shared", "services") for p in (ROOT / d).rglob("*.py"))
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}
# dynamic imports that are allowed, and what guards them
DYNAMIC_IMPORTS = {
    "services/cli.py",  # its literal subcommand table (fixed names)
    "services/sampler/rewards.py",  # after check_allowed(task.reward, task.reward_allowlist)
}


def _violations(path: Path) -> list[str]:
    tree, rel, out = ast.parse(path.read_text(), str(path)), path.relative_to(ROOT).as_posix(), []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            out += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            out.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else ""
            kwargs = {k.arg: k.value for k in node.keywords}
            if isinstance(fn, ast.Name) and name in BANNED_CALLS:
                out.append(f"{where} calls {name}()")
            if owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                out.append(f"{where} calls yaml.{name} (use yaml.safe_load)")
            if owner == "torch" and name == "load":
                wo = kwargs.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    out.append(f"{where} calls torch.load without weights_only=True (that is pickle)")
            if name == "import_module" and rel not in DYNAMIC_IMPORTS:
                out.append(f"{where} imports a module by name")
            shell = kwargs.get("shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                out.append(f"{where} runs a shell command")
    return out


def test_sources_were_found():
    assert len(SOURCES) > 50 and ROOT / "shared" / "protocol.py" in SOURCES


def test_no_pickle_eval_exec_or_unsafe_loaders_in_shared_or_services():
    found = [v for p in SOURCES for v in _violations(p)]
    assert found == []


def test_scanner_catches_what_it_bans(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle as p\nfrom marshal import loads\nimport yaml, torch\n"
                   "eval('1')\nyaml.load(s)\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
                   "import subprocess\nsubprocess.run('x', shell=True)\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = _violations(bad)
    finally:
        ROOT = saved
    assert len(found) == 7, found


def test_token_check_is_constant_time():
    src = (ROOT / "services/control/deps.py").read_text()
    tree = ast.parse(src)
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "compare_digest" in calls
    assert "api_token ==" not in src and "== settings.api_token" not in src


@pytest.mark.parametrize("target,allowlist", [
    ("evil_reward_mod:score", ["shared.", "dashrl_rewards."]),
    ("sharedevil.x:score", ["shared."]),  # a prefix must end at a module boundary
    ("os:system", ["shared."]),
    ("builtins:eval", ["shared."]),
])
def test_reward_outside_the_allowlist_is_refused_before_import(tmp_path, monkeypatch, target, allowlist):
    marker = tmp_path / "imported"
    (tmp_path / "evil_reward_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\ndef score(c, a):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = TaskConfig(reward=target, reward_allowlist=allowlist)
    with pytest.raises(ConfigError, match=r"task\.reward: module .* is not under task\.reward_allowlist"):
        reward_spec(cfg)
    assert not marker.exists() and "evil_reward_mod" not in sys.modules


def test_reward_inside_the_allowlist_is_imported(tmp_path, monkeypatch):
    (tmp_path / "dashrl_rewards").mkdir()
    (tmp_path / "dashrl_rewards" / "__init__.py").write_text("")
    (tmp_path / "dashrl_rewards" / "mine.py").write_text("def score(c, a):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_allowed("dashrl_rewards.mine:score", ["dashrl_rewards."])
    assert reward_spec(TaskConfig(reward="dashrl_rewards.mine:score")).kind == "function"
    with pytest.raises(ConfigError, match="not 'module:function'"):
        check_allowed("dashrl_rewards.mine", ["dashrl_rewards."])
