"""Run compose.yaml's services as plain local processes, with the commands, environment,
healthchecks and start order the file gives them (there is no Docker engine in CI).

The only changes are the ones a container boundary makes, applied by fixed rules:
- `dashrl ...` (the image's entrypoint) runs as `python -m services.cli ...`; redis-server runs
  the machine's binary with the service's own arguments, listening on loopback only;
- `<service or alias>:<port>` and a service's own exposed ports -> 127.0.0.1 and a free port;
  `0.0.0.0` -> `127.0.0.1`;
- a path under a volume's mount point -> that volume's folder here (named volumes: one shared
  folder each; bind mounts: the repository path); `/tmp/...` -> the service's own scratch folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port, redis_server_binary
from tests.helpers.compose_file import ROOT


@dataclass
class LocalService:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None
    depends_on: dict[str, str]
    scratch: Path
    proc: subprocess.Popen | None = None
    log_path: Path = field(default=Path())


class ComposeProcesses:
    def __init__(self, services: dict[str, dict], volumes: list[str], workdir: Path) -> None:
        self.workdir, self.raw = workdir, services
        self.hosts = {n: n for n in services}
        for name, svc in services.items():
            for alias in ((svc.get("networks") or {}).get("default") or {}).get("aliases", []):
                self.hosts[alias] = name
        self.ports = {(n, int(p)): free_port() for n, s in services.items() for p in s.get("expose", [])}
        self.volume_dirs = {v: workdir / "volumes" / v for v in volumes}
        self.services = {n: self._service(n, s) for n, s in services.items()}

    # --- translation rules ------------------------------------------------------------------
    def mounts(self, name: str) -> list[tuple[str, Path]]:
        out = []
        for spec in self.raw[name].get("volumes", []):
            source, target = spec.split(":")[:2]
            here = (ROOT / source).resolve() if source.startswith((".", "/")) else self.volume_dirs[source]
            out.append((target, here))
        return out + [("/tmp", self.workdir / "scratch" / name)]

    def translate(self, name: str, text: str, shell: bool = False) -> str:
        def host_port(m: re.Match) -> str:
            host, port = m.group(1), int(m.group(2))
            target = name if host in ("127.0.0.1", "localhost") else self.hosts.get(host)
            mapped = self.ports.get((target, port)) if target else None
            return m.group(0) if mapped is None else f"127.0.0.1:{mapped}"

        text = re.sub(r"\b([A-Za-z0-9_.-]+):(\d+)\b", host_port, text)
        text = text.replace("0.0.0.0", "127.0.0.1")
        own = {p: mapped for (svc, p), mapped in self.ports.items() if svc == name}
        if text.isdigit() and int(text) in own:
            return str(own[int(text)])
        if shell:  # a port as a word of a shell command (`redis-cli -p 6379`)
            for port, mapped in own.items():
                text = re.sub(rf"(?<![\d.:]){port}(?!\d)", str(mapped), text)
        for target, here in self.mounts(name):
            if text == target or text.startswith(target + "/"):
                return str(here) + text[len(target):]
        return text

    def _argv(self, name: str, command: list[str]) -> list[str]:
        args = [self.translate(name, a) for a in command]
        if args[0] == "dashrl":
            return [sys.executable, "-m", "services.cli", *args[1:]]
        if args[0] == "redis-server":
            return [redis_server_binary(), *args[1:], "--bind", "127.0.0.1", "--save", ""]
        raise ValueError(f"{name}: no local equivalent for {args[0]!r}")

    def _service(self, name: str, svc: dict) -> LocalService:
        command = svc["command"]
        if svc.get("build"):  # the image's ENTRYPOINT is `dashrl`
            command = ["dashrl", *command]
        env = {k: self.translate(name, str(v)) for k, v in (svc.get("environment") or {}).items()}
        test = (svc.get("healthcheck") or {}).get("test")
        check = None
        if test and test[0] == "CMD":
            check = self._argv(name, test[1:])
        elif test and test[0] == "CMD-SHELL":
            check = ["sh", "-c", self.translate(name, test[1], shell=True)]
        deps = {d: (c or {}).get("condition", "service_started") for d, c in (svc.get("depends_on") or {}).items()}
        return LocalService(name, self._argv(name, command), env, check, deps, self.workdir / "scratch" / name)

    # --- running ----------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASHRL_")}
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        return env

    def healthy(self, s: LocalService) -> bool:
        if s.healthcheck is None:
            return s.proc is not None and s.proc.poll() is None
        done = subprocess.run(s.healthcheck, env={**self.base_env(), **s.env}, cwd=s.scratch,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return done.returncode == 0

    def wait_healthy(self, name: str, timeout_s: float) -> None:
        s, deadline = self.services[name], time.monotonic() + timeout_s
        while not self.healthy(s):
            if s.proc is not None and s.proc.poll() is not None:
                raise AssertionError(f"{name} exited {s.proc.returncode}:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy after {timeout_s}s:\n{self.log(name)[-3000:]}")
            time.sleep(0.5)

    def start(self, name: str, timeout_s: float = 120.0) -> None:
        """Start `name` after its dependencies, honouring `condition: service_healthy`."""
        s = self.services[name]
        if s.proc is not None:
            return
        for dep, condition in s.depends_on.items():
            self.start(dep, timeout_s)
            if condition == "service_healthy":
                self.wait_healthy(dep, timeout_s)
        for _target, here in self.mounts(name):
            here.mkdir(parents=True, exist_ok=True)
        s.log_path = self.workdir / f"{name}.log"
        with open(s.log_path, "ab") as log:
            s.proc = subprocess.Popen(s.argv, env={**self.base_env(), **s.env}, cwd=s.scratch, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def exec(self, name: str, command: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        """`docker compose exec NAME ...`: a command with the service's environment."""
        s = self.services[name]
        return subprocess.run(self._argv(name, command), env={**self.base_env(), **s.env}, cwd=s.scratch,
                              capture_output=True, text=True, timeout=timeout_s)

    def log(self, name: str) -> str:
        path = self.services[name].log_path
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop_all(self, timeout_s: float = 60.0) -> dict[str, int | None]:
        """`docker compose down`: SIGTERM everything (dependents first), SIGKILL stragglers."""
        codes = {}
        for s in reversed(list(self.services.values())):
            if s.proc is None:
                continue
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
                try:
                    s.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                    s.proc.wait()
            codes[s.name] = s.proc.returncode
        return codes
