"""Typed configuration for a dashrl run and for each service.

Owns the schema only: every field has a type, a default and a docstring, unknown keys are
rejected (`extra="forbid"`), and cross-field rules live in validators. Loading YAML, applying
`--set` overrides and turning validation errors into one-line messages is `shared.configio`.
Sections in their own modules, re-exported here: `shared.sampler_config`, `shared.learner_config`,
`shared.eval_config`, `shared.tracking_config`, `shared.rows_config`. Deployment values (Redis URL,
ports, the API token) come from the environment: `shared.deployment.Deployment`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.config_base import Strict, tagged_union
from shared.deployment import Deployment, with_redis_password  # noqa: F401 (re-exported)
from shared.eval_config import EvalConfig, check_evals, effective_evals
from shared.learner_config import FsWeightStoreConfig, LearnerConfig, RedisWeightStoreConfig  # noqa: F401
from shared.lora_config import LoraConfig
from shared.rows_config import RowFields
from shared.sampler_config import SamplerConfig, TransformersBackendConfig, VllmBackendConfig  # noqa: F401
from shared.tracking_config import TrackerConfig
from shared.weights_config import BroadcastTransport, StoreTransport, WeightsConfig  # noqa: F401


class ModelConfig(Strict):
    path: str = "data/demo-policy"
    """Hugging Face causal-LM folder (config.json + weights + tokenizer) to start from."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Served dtype: the sampler's engine dtype and the dtype of every published weight version.
    `auto`: bfloat16 on CUDA, float32 on CPU. How the learner trains is `learner.precision`."""
    trust_remote_code: bool = False
    """Passed to transformers; leave off unless the model folder needs custom code."""
    lora: LoraConfig | None = None
    """LoRA adapters (`shared.lora_config`): only they train and a weight version is the adapter.
    None: full fine-tuning."""


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


# A source given without `kind` (e.g. `--set task.source.name=basic_arithmetic`) is the default kind.
TaskSource = tagged_union(ReasoningGymTask, JsonlTask, default="reasoning_gym")


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
    normalize_by: Literal["kept", "generated"] = "kept"
    """What the aggregation's counts are of. kept: the samples that reached the learner (after
    gradient filtering), the paper's code; generated: every sample the sampler generated for the
    step's batches, filtered ones too, so that with `kl_beta: 0` dropping zero-advantage samples
    changes only the cost of a step, not its gradient (docs/learner.md)."""
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
    weights: WeightsConfig = Field(default_factory=WeightsConfig)
    """How weight versions travel (`transport: store | broadcast`)."""
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

    @model_validator(mode="after")
    def _lora_without_fsdp(self) -> "RunConfig":
        if self.model.lora is not None and self.learner.parallel == "fsdp":
            raise ValueError("model.lora: LoRA with learner.parallel: fsdp is not supported yet (use ddp; "
                             "the adapters are small, so DDP's full copy per rank costs little)")
        return self
