"""Which GPUs each service of a local run gets: disjoint devices for the learner and samplers.

Without this, every child of `dashrl run` sees all GPUs and lands on cuda:0, where vLLM
reserves most of the memory. `plan_gpus` gives the learner the first `learner.num_gpus`
devices and splits the rest evenly (contiguous blocks) among the samplers, one at least each;
the launcher passes each child its share as CUDA_VISIBLE_DEVICES, and starts a learner with
more than one GPU under torchrun, one rank per GPU. A box without GPUs gets no plan (CPU run).
No torch here (the control plane imports none): the devices are read from the environment
(CUDA_VISIBLE_DEVICES) or counted with `nvidia-smi -L`.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """The GPU ids this process may hand out: CUDA_VISIBLE_DEVICES when set (empty: none),
    else one per line of `nvidia-smi -L` (none without the tool)."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def plan_gpus(gpus: list[str], learner_gpus: int, samplers: int) -> dict[str, list[str]]:
    """instance name (learner, sampler-0, ...) -> its GPU ids; {} when there are no GPUs.
    Raises ValueError, one line, when there are too few for disjoint devices."""
    if not gpus:
        return {}
    need = learner_gpus + samplers
    if len(gpus) < need:
        raise ValueError(f"learner.num_gpus={learner_gpus} and {samplers} sampler(s) need {need} GPUs, "
                         f"{len(gpus)} visible ({','.join(gpus)}); lower learner.num_gpus or sampler.num_shards")
    plan = {"learner": gpus[:learner_gpus]}
    rest = gpus[learner_gpus:]
    per, extra = divmod(len(rest), samplers)
    at = 0
    for i in range(samplers):
        n = per + (1 if i < extra else 0)
        plan[f"sampler-{i}"] = rest[at : at + n]
        at += n
    return plan
