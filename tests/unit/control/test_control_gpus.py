"""GPU placement of a local run: disjoint devices for the learner and the samplers, read from the
environment the launcher gives its children (GPU ids injected: no GPU needed)."""

from types import SimpleNamespace

import pytest

import services.control.launcher as launcher_mod
from services.control.gpus import plan_gpus, visible_gpus
from services.control.launcher import LocalLauncher
from services.control.runs_store import RunsStore
from services.control.supervise import command, service_env
from shared.config import RunConfig


def test_visible_gpus_from_the_environment():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0, 2,3"}) == ["0", "2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == [] == visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"})


def test_plan_learner_first_samplers_split_the_rest():
    assert plan_gpus(["0", "1", "2", "3"], 1, 1) == {"learner": ["0"], "sampler-0": ["1", "2", "3"]}
    assert plan_gpus(["0", "1", "2", "3", "4"], 2, 2) == {"learner": ["0", "1"], "sampler-0": ["2", "3"],
                                                          "sampler-1": ["4"]}
    assert plan_gpus([], 2, 3) == {}  # CPU box: no plan


def test_too_few_gpus_is_a_clear_error():
    with pytest.raises(ValueError, match=r"learner.num_gpus=2 and 1 sampler\(s\) need 3 GPUs, 2 visible"):
        plan_gpus(["0", "1"], 2, 1)


def _child_envs(redis_client, tmp_path, monkeypatch, gpus, **learner):
    started = []
    # the one fake: record each child's spec instead of starting the process
    monkeypatch.setattr(launcher_mod, "spawn", lambda spec: started.append(spec) or SimpleNamespace(pid=0))
    cfg = RunConfig.model_validate({"output_dir": str(tmp_path), "sampler": {"num_shards": 2},
                                    "learner": learner})
    launcher = LocalLauncher(RunsStore(redis_client), "redis://127.0.0.1:1", gpus=gpus)
    try:
        launcher._start("r1", cfg)  # builds the specs and calls `spawn` for each child
    finally:
        launcher.close()
    return {s.instance: (service_env(s, base={"CUDA_VISIBLE_DEVICES": "0,1,2,3"}), command(s)) for s in started}


def test_launcher_gives_children_disjoint_devices(redis_client, tmp_path, monkeypatch):
    envs = _child_envs(redis_client, tmp_path, monkeypatch, ["0", "1", "2", "3"])
    assert {k: e["CUDA_VISIBLE_DEVICES"] for k, (e, _) in envs.items()} == {
        "learner": "0", "sampler-0": "1,2", "sampler-1": "3"}
    assert "torchrun" not in " ".join(envs["learner"][1])  # one learner GPU: a plain process


def test_multi_gpu_learner_runs_under_torchrun(redis_client, tmp_path, monkeypatch):
    envs = _child_envs(redis_client, tmp_path, monkeypatch, ["4", "5", "6", "7"], num_gpus=2)
    env, cmd = envs["learner"]
    assert env["CUDA_VISIBLE_DEVICES"] == "4,5" and envs["sampler-1"][0]["CUDA_VISIBLE_DEVICES"] == "7"
    assert "torch.distributed.run" in cmd and "--nproc_per_node=2" in cmd  # one rank per learner GPU
    assert "torch.distributed.run" not in envs["sampler-0"][1]


def test_cpu_box_leaves_the_environment_alone(redis_client, tmp_path, monkeypatch):
    envs = _child_envs(redis_client, tmp_path, monkeypatch, [])
    assert all(e["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" for e, _ in envs.values())  # inherited unchanged


def test_too_few_gpus_refuses_the_run(redis_client, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="need 3 GPUs, 2 visible"):
        _child_envs(redis_client, tmp_path, monkeypatch, ["0", "1"])
