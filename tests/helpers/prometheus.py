"""A real Prometheus server (Debian's `prometheus`) scraping given targets, for integration tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers.control_server import free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class Prometheus:
    def __init__(self, workdir: Path, jobs: dict[str, list[str]], scrape_interval: str = "1s") -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Prometheus":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(self.config))
        log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen([prometheus_binary(), f"--config.file={cfg}",
                                      f"--storage.tsdb.path={self.workdir / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus did not start: " + (self.workdir / "prometheus.log").read_text()[-2000:])
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, expr: str) -> list[dict]:
        resp = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
        assert resp["status"] == "success", resp
        return resp["data"]["result"]
