"""The compose stack's `cpu` profile, run as plain processes with exactly compose.yaml's
commands, environment, healthchecks and start order (tests/helpers/compose_local.py), completes a
short run started the documented way (`docker compose exec control dashrl submit ...`).

Proves the wiring, not the speed: Redis with the password compose sets (append-only), the control
plane handing the run to long-running workers, the workers' healthchecks, the shared runs volume
carrying weight versions from the learner to the sampler. Prometheus and Grafana (third-party
images) are not started here; their files are checked in tests/unit/deploy.
"""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from tests.helpers.compose_file import ROOT, active_services, example_env, load_compose
from tests.helpers.compose_local import ComposeProcesses
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
MAX_STEPS = 3

# What a user's `--set` would shrink for a 2-core box; paths are the containers' (mapped below).
SHRINK = [
    "sampler.backend=transformers", "sampler.sampling_batch_prompts=4", "sampler.group_size=4",
    "sampler.max_new_tokens=8", "sampler.max_prompt_tokens=96", "sampler.eval_every=0",
    "task.source.size=50", "task.eval_size=0",
    "task.reward=tests.helpers.sampler_rewards:digit_fraction", 'task.reward_allowlist=["tests.helpers."]',
    "learner.train_batch_size=8", "learner.micro_batch_size=4", "learner.micro_batch_tokens=512",
    f"learner.max_steps={MAX_STEPS}", "learner.checkpoint_every=2", "learner.max_staleness=4", "streams.block_ms=100",
]


@pytest.fixture
def stack(tmp_path):
    doc = load_compose(env=example_env(COMPOSE_PROFILES="cpu"))
    services = active_services(doc, {"cpu"})
    local = {n: s for n, s in services.items() if n in ("redis", "control") or s.get("build")}
    assert set(local) == {"redis", "control", "sampler-cpu", "learner-cpu"}
    procs = ComposeProcesses(local, list(doc["volumes"]), tmp_path)
    yield procs
    procs.stop_all()


def test_cpu_profile_completes_a_run(stack, tmp_path):
    for name in ("sampler-cpu", "learner-cpu"):  # starts redis, then control, as depends_on says
        stack.start(name)
    for name in ("sampler-cpu", "learner-cpu"):
        stack.wait_healthy(name, 120)

    # Redis refuses clients without the password that compose gave it.
    port = stack.ports[("redis", 6379)]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()

    # The starting model goes into the models volume, as docs/deploy.md says.
    models, runs = stack.volume_dirs["models"], stack.volume_dirs["runs"]
    build_tiny_model(models / "tiny")
    submit = stack.exec("control", [
        "dashrl", "submit", "/etc/dashrl/configs/compose-cpu.yaml",
        "--set", f"model.path={stack.translate('sampler-cpu', '/models/tiny')}",
        "--set", f"output_dir={stack.translate('learner-cpu', '/runs')}", *[a for s in SHRINK for a in ("--set", s)],
    ])
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip()

    api = f"http://127.0.0.1:{stack.ports[('control', 8000)]}"
    view = wait_for(lambda: _finished(api, run_id), f"run {run_id} to finish", 150, every=1)
    assert view["state"] == "finished", json.dumps(view, indent=1)[:3000] + stack.log("learner-cpu")[-3000:]
    assert view["learner_step"] == MAX_STEPS

    folder = runs / run_id
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, MAX_STEPS + 1))
    # Weights travelled through the shared runs volume: versions the learner published, and
    # rollouts the sampler made with a published version (not only the starting model).
    assert any(p.name.startswith("v") for p in (folder / "weights").iterdir())
    sampler_versions = [s["info"].get("policy_version", 0) for s in view["services"] if s["service"] == "sampler"]
    assert sampler_versions and max(sampler_versions) >= 1, view["services"]
    assert (folder / "final" / "config.json").is_file()

    # The workers outlive the run, healthy and waiting for the next one; a stop ends them cleanly.
    for name in ("sampler-cpu", "learner-cpu", "control"):
        assert stack.services[name].proc.poll() is None, stack.log(name)[-2000:]
        assert stack.healthy(stack.services[name]), name
    codes = stack.stop_all()
    assert codes["sampler-cpu"] == 0 and codes["learner-cpu"] == 0, codes


def _finished(api: str, run_id: str) -> dict | None:
    view = httpx.get(f"{api}/v1/runs/{run_id}", timeout=10).json()
    return view if view["state"] in ("finished", "failed", "stopped") else None
