"""Starting one service process (`dashrl sampler` / `dashrl learner`) for a run, and reading
what it left behind when it died.

Shared by both ways a run reaches its services: the local launcher (child processes of the
control plane) and `dashrl worker` (a long-running worker under compose or Kubernetes), so a
service is started, logged and judged the same way in every deployment.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import RunConfig
from shared.configio import dump_config
from shared.run_folder import run_dir

ROLES = ("sampler", "learner")


@dataclass
class ServiceSpec:
    role: str
    """sampler or learner."""
    instance: str
    """Unique within the run, e.g. learner, sampler-0 (names its log file and metrics port)."""
    run_id: str
    config_path: Path
    redis_url: str
    log_path: Path
    metrics_port: int = 0
    threads: int = 1
    resume: bool = False
    overrides: list[str] = field(default_factory=list)
    torchrun: "Torchrun | None" = None
    """Start the learner under torchrun (several GPUs or nodes); None: one plain process."""
    gpus: list[str] | None = None
    """GPU ids the service may use (its CUDA_VISIBLE_DEVICES); None: the environment's as is."""


@dataclass(frozen=True)
class Torchrun:
    """How `dashrl worker --role learner` spreads the learner over GPUs and nodes."""

    nproc_per_node: str = "1"
    """Ranks on this node: a number, or torchrun's `gpu` (one per visible GPU) / `auto`."""
    nnodes: int = 1
    """Nodes in the job; more than one needs `rdzv_endpoint`."""
    rdzv_endpoint: str | None = None
    """host:port of the rendezvous (node 0), e.g. dashrl-learner-0.dashrl-learner:29400."""

    def prefix(self, run_id: str) -> list[str]:
        """The torchrun part of the command; the run id names the rendezvous, so the nodes of
        one run find each other and never another run's."""
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={self.nnodes}",
               f"--nproc_per_node={self.nproc_per_node}"]
        if self.nnodes > 1:
            if not self.rdzv_endpoint:
                raise ValueError("a multi-node learner needs a rendezvous endpoint (--rdzv-endpoint)")
            cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={self.rdzv_endpoint}", f"--rdzv_id={run_id}"]
        else:
            cmd.append("--standalone")
        return cmd + ["-m"]


def write_run_config(cfg: RunConfig) -> Path:
    """Write the resolved config to `<run dir>/config.yaml` atomically (several writers may race)."""
    folder = run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    tmp = folder / f".config.yaml.{os.getpid()}"
    tmp.write_text(dump_config(cfg))
    tmp.replace(path)
    return path


def split_threads(n_processes: int, cpus: int | None = None) -> int:
    """Threads per process so that the run's processes share the machine's cores, not fight."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, n_processes))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(spec: ServiceSpec) -> list[str]:
    launch = [sys.executable, "-m"] if spec.torchrun is None or spec.role != "learner" else spec.torchrun.prefix(spec.run_id)
    cmd = launch + ["services.cli", spec.role, str(spec.config_path), "--set", f"run_id={spec.run_id}"]
    for item in spec.overrides:
        cmd += ["--set", item]
    if spec.resume and spec.role == "learner":
        cmd.append("--resume")
    return cmd


def service_env(spec: ServiceSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    threads = str(spec.threads)
    env.update(
        DASHRL_REDIS_URL=spec.redis_url,
        DASHRL_METRICS_PORT=str(spec.metrics_port),
        DASHRL_INSTANCE_ID=spec.instance,
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if spec.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(spec.gpus)
    return env


def _die_with_parent() -> None:
    """Child side of fork: get SIGTERM when the thread that started us dies (Linux only), so a
    killed control plane never leaves services running."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(spec: ServiceSpec) -> subprocess.Popen:
    """Start the service with its output appended to its log file. It gets its own session, so
    a Ctrl-C at the terminal reaches only the parent, which then stops the run gracefully."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as log:
        return subprocess.Popen(
            command(spec), env=service_env(spec), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def log_tail(path: Path, max_lines: int = 25, max_chars: int = 3000) -> str:
    """The last lines of a log file (where a traceback ends up), bounded in size."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = text.rstrip().splitlines()[-max_lines:]
    return "\n".join(lines)[-max_chars:]


def terminate(proc: subprocess.Popen, wait_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited after `wait_s`. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
