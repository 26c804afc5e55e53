"""Prometheus metrics: every metric name dashrl exports, defined once.

Each service builds its own set into its own registry (so a service's /metrics shows only what
it measures) and serves it with `serve()`. Names are `dashrl_<service>_*` except the few that
several services share (policy version, staleness, stream depth, weight sync, reward, eval).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

STALENESS_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 16)
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class StreamMetrics:
    """Transport counters (any service that reads or writes a stream)."""

    pending: Gauge
    dead_lettered: Counter
    reclaimed: Counter
    backpressure_wait: Counter
    redis_errors: Counter


def stream_metrics(reg: CollectorRegistry, service: str) -> StreamMetrics:
    return StreamMetrics(
        pending=Gauge("dashrl_stream_pending_entries", "Rollout entries produced but not yet committed", registry=reg),
        dead_lettered=Counter(f"dashrl_{service}_dead_lettered_total", "Undecodable stream entries moved to the dead-letter stream", ["reason"], registry=reg),
        reclaimed=Counter(f"dashrl_{service}_reclaimed_total", "Pending entries reclaimed from idle consumers", registry=reg),
        backpressure_wait=Counter(f"dashrl_{service}_backpressure_wait_seconds_total", "Seconds writers waited on back-pressure", registry=reg),
        redis_errors=Counter(f"dashrl_{service}_redis_errors_total", "Redis connection errors (each retried with backoff)", registry=reg),
    )


@dataclass
class SamplerMetrics:
    tokens: Counter
    samples: Counter
    batches: Counter
    policy_version: Gauge
    weight_sync: Histogram
    weight_rejected: Counter
    reward_mean: Gauge
    kept_fraction: Gauge
    eval_accuracy: Gauge
    eval_pass_at_k: Gauge
    reward_failures: Counter
    generate_seconds: Histogram
    stream: StreamMetrics
    push: WeightPushMetrics
    """The collective push (`weights.transport: broadcast`)."""
    tokens_per_s: Gauge
    completion_len_mean: Gauge
    truncated_fraction: Gauge
    prompts_dropped: Counter


def sampler_metrics(reg: CollectorRegistry | None = None) -> tuple[SamplerMetrics, CollectorRegistry]:
    reg = reg or CollectorRegistry()
    return SamplerMetrics(
        tokens=Counter("dashrl_sampler_tokens_total", "Completion tokens generated", registry=reg),
        samples=Counter("dashrl_sampler_samples_total", "Samples generated, by filtering outcome", ["outcome"], registry=reg),
        batches=Counter("dashrl_sampler_batches_total", "Rollout batches pushed", registry=reg),
        policy_version=Gauge("dashrl_policy_version", "Policy version this service holds", registry=reg),
        weight_sync=Histogram("dashrl_weight_sync_seconds", "Publish-to-swap latency of a weight version", buckets=SECONDS_BUCKETS, registry=reg),
        weight_rejected=Counter("dashrl_sampler_weights_rejected_total", "Weight versions refused (checksum or load failure)", ["reason"], registry=reg),
        reward_mean=Gauge("dashrl_reward_mean", "Mean reward of the latest batch (before filtering)", registry=reg),
        kept_fraction=Gauge("dashrl_sampler_kept_fraction", "Fraction of the latest batch kept by gradient filtering", registry=reg),
        eval_accuracy=Gauge("dashrl_eval_accuracy", "Accuracy of each named eval (task.evals): greedy, or sampled pass@1", ["eval", "mode"], registry=reg),
        eval_pass_at_k=Gauge("dashrl_sampler_eval_pass_at_k", "Unbiased pass@k of each named eval over its sampled completions", ["eval", "k"], registry=reg),
        reward_failures=Counter("dashrl_sampler_reward_failures_total", "Reward calls that raised or timed out (scored 0)", ["kind"], registry=reg),
        generate_seconds=Histogram("dashrl_sampler_generate_seconds", "Seconds per generation call", buckets=SECONDS_BUCKETS, registry=reg),
        stream=stream_metrics(reg, "sampler"),
        push=weight_push_metrics(reg),
        tokens_per_s=Gauge("dashrl_sampler_tokens_per_second", "Completion tokens per second of the latest generation call", registry=reg),
        completion_len_mean=Gauge("dashrl_sampler_completion_length_mean", "Mean completion length (tokens) of the latest batch", registry=reg),
        truncated_fraction=Gauge("dashrl_sampler_truncated_fraction", "Fraction of the latest batch cut at max_new_tokens", registry=reg),
        prompts_dropped=Counter("dashrl_sampler_prompts_dropped_total", "Prompts skipped for exceeding max_prompt_tokens", registry=reg),
    ), reg


@dataclass
class LearnerMetrics:
    steps: Counter
    tokens: Counter
    samples: Counter
    skipped: Counter
    policy_version: Gauge
    staleness: Histogram
    loss: Gauge
    grad_norm: Gauge
    lr: Gauge
    step_seconds: Counter
    publish_seconds: Histogram
    publish_failures: Counter
    stream: StreamMetrics
    push: WeightPushMetrics
    """The collective push (`weights.transport: broadcast`, rank 0)."""
    kept_fraction: Gauge
    adv_abs_mean: Gauge
    tokens_per_s: Gauge
    mismatch: dict[str, Gauge]  # MISMATCH_FIGURES name -> gauge
    is_truncated_fraction: Gauge


MISMATCH_FIGURES = {
    "logp_abs_diff_mean": "mean |sampler logp - learner logp| over completion tokens",
    "logp_abs_diff_max": "max |sampler logp - learner logp| over completion tokens",
    "kl_k3": "k3 estimate of KL(sampler || learner) per token",
    "ratio_mean": "mean importance ratio learner / sampler",
    "ratio_p99": "99th percentile of the importance ratio",
    "ratio_max": "max importance ratio",
    "ratio_outside_fraction": "fraction of tokens whose ratio is outside [0.5, 2]",
    "excluded_fraction": "fraction of sampled tokens outside the learner's top-k/top-p set",
}
"""The sampler/learner mismatch figures (`shared.algo.mismatch.summary`), each exported as
`dashrl_learner_mismatch_<name>` and written as `mismatch_<name>` in metrics.jsonl."""


def learner_metrics(reg: CollectorRegistry | None = None) -> tuple[LearnerMetrics, CollectorRegistry]:
    reg = reg or CollectorRegistry()
    return LearnerMetrics(
        steps=Counter("dashrl_learner_steps_total", "Optimizer steps committed", registry=reg),
        tokens=Counter("dashrl_learner_tokens_total", "Tokens trained on (prompt + completion)", registry=reg),
        samples=Counter("dashrl_learner_samples_total", "Samples trained on", registry=reg),
        skipped=Counter("dashrl_learner_skipped_total", "Rollout batches acked without training", ["reason"], registry=reg),
        policy_version=Gauge("dashrl_policy_version", "Policy version this service holds", registry=reg),
        staleness=Histogram("dashrl_rollout_staleness_versions", "Learner version minus the rollout's policy version", buckets=STALENESS_BUCKETS, registry=reg),
        loss=Gauge("dashrl_learner_loss", "Loss of the latest step", registry=reg),
        grad_norm=Gauge("dashrl_learner_grad_norm", "Gradient norm of the latest step (before clipping)", registry=reg),
        lr=Gauge("dashrl_learner_lr", "Learning rate of the latest step", registry=reg),
        step_seconds=Counter("dashrl_learner_step_seconds_total", "Step time by phase", ["phase"], registry=reg),
        publish_seconds=Histogram("dashrl_learner_publish_seconds", "Seconds to write and announce a weight version", buckets=SECONDS_BUCKETS, registry=reg),
        publish_failures=Counter("dashrl_learner_publish_failures_total", "Weight versions whose (background) publish failed", registry=reg),
        stream=stream_metrics(reg, "learner"),
        push=weight_push_metrics(reg),
        kept_fraction=Gauge("dashrl_learner_kept_fraction", "Gradient-filtering kept fraction of the latest step's rollouts (sampler-reported)", registry=reg),
        adv_abs_mean=Gauge("dashrl_learner_advantage_abs_mean", "Mean |advantage| of the latest step's samples", registry=reg),
        tokens_per_s=Gauge("dashrl_learner_tokens_per_second", "Tokens through forward+backward per second of training time, latest step", registry=reg),
        mismatch=_mismatch_gauges(reg),
        is_truncated_fraction=Gauge("dashrl_learner_is_truncated_fraction", "Fraction of the latest step's tokens whose IS weight algo.is_cap truncated", registry=reg),
    ), reg


def _mismatch_gauges(reg: CollectorRegistry) -> dict[str, Gauge]:
    # one name per figure (dashrl_learner_mismatch_kl_k3, ...) reads best in PromQL
    return {name: Gauge(f"dashrl_learner_mismatch_{name}", f"Latest step, first forward of its fresh samples: {doc}",
                        registry=reg) for name, doc in MISMATCH_FIGURES.items()}


@dataclass
class ControlMetrics:
    runs: Gauge
    requests: Counter
    service_failures: Counter
    launches: Counter


def control_metrics(reg: CollectorRegistry | None = None) -> tuple[ControlMetrics, CollectorRegistry]:
    reg = reg or CollectorRegistry()
    return ControlMetrics(
        runs=Gauge("dashrl_control_runs", "Runs known to the control plane, by state", ["state"], registry=reg),
        requests=Counter("dashrl_control_http_requests_total", "API requests, by method, route and status", ["method", "route", "status"], registry=reg),
        service_failures=Counter("dashrl_control_service_failures_total", "Service processes that exited non-zero, by service", ["service"], registry=reg),
        launches=Counter("dashrl_control_launches_total", "Runs launched, by launcher", ["launcher"], registry=reg),
    ), reg


def serve(reg: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> int:
    """Serve `reg` on /metrics; port 0 picks a free port. Returns the bound port."""
    server, _thread = start_http_server(port, addr=addr, registry=reg)
    return server.server_port


def tracker_errors(reg: CollectorRegistry, service: str) -> Counter:
    """Experiment-tracker failures (`shared.tracking`): client errors and records dropped on a full queue."""
    return Counter(f"dashrl_{service}_tracker_errors_total", "Experiment-tracker errors and dropped records (never fatal)",
                   ["tracker", "reason"], registry=reg)


@dataclass
class WeightPushMetrics:
    """The collective push (shared.weight_push), on the learner and on every sampler."""

    pushes: Counter
    fallbacks: Counter
    seconds: Histogram


def weight_push_metrics(reg: CollectorRegistry) -> WeightPushMetrics:
    return WeightPushMetrics(
        pushes=Counter("dashrl_weight_push_total", "Weight versions pushed or received over the push group", registry=reg),
        fallbacks=Counter("dashrl_weight_push_fallback_total", "Versions that fell back to the store (timeout, broken, form, version, checksum, no_seat)", ["reason"], registry=reg),
        seconds=Histogram("dashrl_weight_push_seconds", "Seconds to push or receive one version", buckets=SECONDS_BUCKETS, registry=reg),
    )
