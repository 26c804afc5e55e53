"""`dashrl control` as a real uvicorn process on a free port, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlServer:
    def __init__(self, redis_url: str, workdir: Path, *, launcher: str = "workers", token: str | None = TOKEN,
                 port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir, self.log_path = workdir, workdir / f"control-{self.port}.log"
        self.env = {**os.environ, "DASHRL_REDIS_URL": redis_url, "DASHRL_CONTROL_PORT": str(self.port),
                    "DASHRL_CONTROL_HOST": "127.0.0.1", "DASHRL_LAUNCHER": launcher, "PYTHONUNBUFFERED": "1",
                    **(extra_env or {})}
        self.env.pop("DASHRL_API_TOKEN", None)
        if token:
            self.env["DASHRL_API_TOKEN"] = token
        self.token = token
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> "ControlServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "control"], cwd=self.workdir,
                                     env={**self.env, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"control plane did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def client(self, auth: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> "ControlServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()



def tiny_run_config(out: Path, model: Path, max_steps: int = 500, **sections: dict) -> dict:
    """A run of the real services on a tiny model that trains a step in well under a second."""
    cfg = {
        "output_dir": str(out), "model": {"path": str(model), "dtype": "float32"},
        "task": {"source": {"kind": "reasoning_gym", "name": "chain_sum", "size": 50}, "eval_size": 4,
                 "system_prompt": "", "reward_workers": 1,
                 # A random tiny model never solves chain_sum; partial credit for digits gives it a signal.
                 "reward": "tests.helpers.sampler_rewards:digit_fraction", "reward_allowlist": ["tests.helpers."]},
        "sampler": {"backend": "transformers", "sampling_batch_prompts": 4, "group_size": 4, "max_new_tokens": 8,
                    "max_prompt_tokens": 96, "eval_every": 2},
        "learner": {"train_batch_size": 8, "micro_batch_size": 4, "micro_batch_tokens": 512, "lr": 1e-3,
                    "max_steps": max_steps, "checkpoint_every": 5, "max_staleness": 4},
        "streams": {"block_ms": 100},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg
