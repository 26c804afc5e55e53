"""One learner step: forward/backward over micro-batches, accumulate, clip, AdamW, schedule.

Owns the optimizer, the learning-rate schedule and the step itself. A step trains on one
gathered set of samples; with PPO-Multi/Mini it is several optimizer updates (see
`batching.update_groups`). Every micro-batch's loss is divided by totals of its whole update
(`shared.algo.loss.BatchTotals`), so the accumulated gradient is the full-batch gradient
however the samples were packed and however many ranks shared them.

Log-probs are taken under the distribution the sampler drew from (`sampler.temperature`,
`top_k`, `top_p`: `shared.algo.logprobs`), and the first update of every step measures the
sampler/learner mismatch on its fresh samples (`shared.algo.mismatch`) before any update.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from services.learner.microbatches import MicroBatch, TrainSample, collate, pack_micro_batches, update_groups
from services.learner.distributed import DistContext, allreduce_grads, allreduce_max, allreduce_sum
from services.learner.fsdp import NULL_PASS, even_passes, grad_norm_value, in_root_forward, is_sharded, null_pass
from services.learner.model import Placement
from services.learner.packing import PackedMicroBatch, collate_packed, packed_micro_batches, packing_attention
from services.learner.prompt_sharing import (MASK_IMPLEMENTATIONS, SharedMicroBatch, attention_weight,
                                             collate_shared, gather_predicting_logits, pack_shared, shared_rows)
from services.learner.scoring import OutputHead, completion_logprobs
from services.learner.update_totals import UpdateTotals
from shared.algo.logprobs import SamplingDistribution, token_logprobs
from shared.algo.loss import BatchTotals, GeneratedCounts, policy_loss
from shared.algo.mismatch import MismatchSums, mismatch_sums, summary
from shared.config import RunConfig
from shared.lr_schedule import lr_at

log = logging.getLogger(__name__)


@dataclass
class StepStats:
    loss: float = 0.0
    policy_loss: float = 0.0
    kl: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    samples: int = 0
    tokens: int = 0  # real tokens of the step's samples (each counted once)
    tokens_processed: int = 0  # tokens through forward+backward (counted once per update)
    completion_tokens: int = 0
    clip_fraction: float = 0.0
    ratio_mean: float = 0.0
    adv_abs_mean: float = 0.0
    truncated_fraction: float = 0.0  # tokens whose IS weight `algo.is_cap` truncated
    mismatch: dict[str, float] = field(default_factory=dict)  # `mismatch.summary` of the first update
    updates: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"forward_backward": 0.0, "optimizer": 0.0})


class Trainer:
    def __init__(self, model: Any, cfg: RunConfig, place: Placement, ctx: DistContext = DistContext(),
                 ref_model: Any = None, pad_id: int = 0) -> None:
        self.model, self.cfg, self.place, self.ctx, self.ref, self.pad_id = model, cfg, place, ctx, ref_model, pad_id
        lc, algo = cfg.learner, cfg.algo
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sharded = is_sharded(model)  # FSDP2: the ranks reduce-scatter in backward (`fsdp`)
        # fused: one pass over each tensor instead of one per elementwise op (CPU: 3.6 -> 1.0 s per
        # step for 135M parameters on one thread); plain parameters only (not DTensor shards)
        fused = all(type(p) is torch.nn.Parameter and p.device.type in ("cpu", "cuda") for p in self.params)
        self.optimizer = torch.optim.AdamW(self.params, lr=lc.lr, betas=lc.betas, weight_decay=lc.weight_decay,
                                           fused=fused or None)
        per_step = algo.ppo_epochs if algo.ppo != "none" else 1
        warm, total = lc.warmup_steps * per_step, lc.max_steps * per_step
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda u: lr_at(u, schedule=lc.schedule, warmup=warm, total=total))  # lr factor
        self.updates = 0
        attn = getattr(model.config, "_attn_implementation", None)
        self.share_prompts = lc.share_prompts and attn in MASK_IMPLEMENTATIONS
        if lc.share_prompts and not self.share_prompts:
            log.warning("learner: share_prompts needs attention %s, the model uses %r: one row per sample",
                        " or ".join(MASK_IMPLEMENTATIONS), attn)
        self._float_mask = torch.float32 if attn == "eager" else None
        self._attention = attention_weight(model.config)
        self.packing = lc.packing  # one unpadded row per micro-batch; switches sdpa/eager to packed attention
        for m in (model, ref_model) if lc.packing else ():
            if m is not None:
                packing_attention(m)
        self.head = OutputHead.of(model) if lc.logits_chunk_tokens else None
        if lc.logits_chunk_tokens and self.head is None:
            log.warning("learner: %s's logits are not lm_head(hidden): full logits at every position",
                        type(model).__name__)
        s = cfg.sampler
        self.dist = SamplingDistribution.of(s.temperature, s.top_k, s.top_p)  # what the sampler drew from

    def train_step(self, samples: list[TrainSample], step: int,
                   generated: GeneratedCounts | None = None) -> StepStats:
        """One step on `samples`; `generated` (the step's counts before filtering) is the loss's
        normaliser under `algo.normalize_by: generated`."""
        algo = self.cfg.algo
        if algo.normalize_by != "generated":
            generated = None
        stats = StepStats(samples=len(samples), tokens=sum(s.length for s in samples))
        stats.adv_abs_mean = sum(abs(s.advantage) for s in samples) / max(1, len(samples))
        groups = update_groups(len(samples), algo.ppo, algo.ppo_epochs, seed=self.cfg.seed * 1_000_003 + step)
        sums = UpdateTotals()
        for u, idx in enumerate(groups):
            sums += self._update([samples[i] for i in idx], stats, measure=u == 0,
                                 generated=generated, share=len(idx) / len(samples))
        n = len(groups)
        stats.loss, stats.policy_loss, stats.kl = sums.loss / n, sums.policy_loss / n, sums.kl / n
        stats.clip_fraction = sums.fraction(sums.clipped_tokens)
        stats.ratio_mean = sums.fraction(sums.ratio_sum)
        stats.truncated_fraction = sums.fraction(sums.truncated_tokens)
        # Each sample's tokens were summed once per pass over it: K times under multi, once under mini.
        passes = sum(len(idx) for idx in groups) / max(1, len(samples))
        stats.completion_tokens = int(round(sums.completion_tokens / passes))
        stats.updates = n
        return stats

    def _update(self, samples: list[TrainSample], stats: StepStats, measure: bool = False,
                generated: GeneratedCounts | None = None, share: float = 1.0) -> UpdateTotals:
        """One optimizer update; returns its totals summed over ranks. `measure`: record the
        sampler/learner mismatch of these samples in `stats`."""
        lc = self.cfg.learner
        t0 = time.perf_counter()
        lens = [len(s.completion_ids) for s in samples]
        totals = BatchTotals.of(lens, max_len_norm=max(self.cfg.sampler.max_new_tokens, max(lens)))
        if generated is not None:
            totals = totals.over_generated(generated, share)
        self.optimizer.zero_grad(set_to_none=True)
        local = UpdateTotals()
        tokens = 0
        mismatch = MismatchSums() if measure else None
        for mb in self._micro_batches(samples):
            if mb is NULL_PASS:  # sharded: this rank has fewer micro-batches than the busiest
                with self.place.autocast():
                    null_pass(self.model, self.place.device)
                continue
            out = self._forward_backward(mb, totals, mismatch)
            tokens += mb.num_tokens
            local += UpdateTotals.of(out)
        t1 = time.perf_counter()
        if not self.sharded:
            allreduce_grads(self.ctx, self.params)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, lc.max_grad_norm)
        stats.lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        summed = allreduce_sum(self.ctx, local.as_list() + [float(tokens)], self.place.device)
        stats.grad_norm = grad_norm_value(grad_norm)
        stats.tokens_processed += int(summed[-1])
        if mismatch is not None:
            stats.mismatch = self._reduce_mismatch(mismatch)
        stats.seconds["forward_backward"] += t1 - t0
        stats.seconds["optimizer"] += time.perf_counter() - t1
        return UpdateTotals.from_list(summed)

    def _reduce_mismatch(self, m: MismatchSums) -> dict[str, float]:
        """Sums over ranks; max over ranks; the p99 is over this rank's tokens."""
        add = allreduce_sum(self.ctx, m.additive(), self.place.device)
        m.tokens, m.excluded, m.abs_diff_sum, m.k3_sum, m.ratio_sum, m.outside_band = add
        m.abs_diff_max, m.ratio_max = allreduce_max(self.ctx, [m.abs_diff_max, m.ratio_max], self.place.device)
        return summary(m)

    def _micro_batches(self, samples: list[TrainSample]):
        """This rank's micro-batches of one update, on the device (sharded: then NULL_PASS up to
        the busiest rank's count, `fsdp.even_passes`)."""
        lc, r, w, dev = self.cfg.learner, self.ctx.rank, self.ctx.world, self.place.device
        if self.packing:
            units = shared_rows(samples, lc.micro_batch_tokens, lc.micro_batch_size, self._attention) \
                if self.share_prompts else [[i] for i in range(len(samples))]
            rows = packed_micro_batches(samples, units, lc.micro_batch_tokens, lc.micro_batch_size)
            mine = (collate_packed(samples, segments).to(dev) for segments in rows[r::w])
            return even_passes(mine, len(rows), w if self.sharded else 1)
        packed = pack_shared(samples, lc.micro_batch_tokens, lc.micro_batch_size, self._attention) \
            if self.share_prompts else []
        if any(len(row) > 1 for mb in packed for row in mb):  # else the plain layout (its fast causal kernels)
            mine = (collate_shared(samples, rows, self.pad_id, float_mask=self._float_mask).to(dev)
                    for rows in packed[r::w])
            return even_passes(mine, len(packed), w if self.sharded else 1)
        groups = pack_micro_batches([s.length for s in samples], lc.micro_batch_tokens, lc.micro_batch_size)
        mine = (collate([samples[i] for i in g], self.pad_id).to(dev) for g in groups[r::w])
        return even_passes(mine, len(groups), w if self.sharded else 1)

    def _logprobs(self, model: Any, mb: MicroBatch | SharedMicroBatch | PackedMicroBatch) -> torch.Tensor:
        """Log-probs of the completion tokens under the sampling distribution (float32):
        (B, L-1) per row, or (S, T) per sample when shared. By default logits only at the
        completion positions, in chunks (`scoring`); with `logits_chunk_tokens: 0` at every
        position, as the model made them (`token_logprobs` upcasts transiently)."""
        chunk = self.cfg.learner.logits_chunk_tokens
        head = self.head if model is self.model else (OutputHead.of(model) if chunk else None)
        with self.place.autocast():
            if head is not None:
                return in_root_forward(model, completion_logprobs, head, mb, self.dist, chunk)
            logits = model(**mb.model_inputs()).logits  # (rows, L, V)
            if not isinstance(mb, MicroBatch):  # shared or packed rows: per sample (S, T)
                return token_logprobs(gather_predicting_logits(logits, mb), mb.targets, self.dist)
        return token_logprobs(logits[:, :-1], mb.targets, self.dist)

    def _forward_backward(self, mb: MicroBatch | SharedMicroBatch | PackedMicroBatch, totals: BatchTotals,
                          mismatch: MismatchSums | None = None):
        algo = self.cfg.algo
        logp = self._logprobs(self.model, mb)
        if mismatch is not None:
            mismatch.add(mismatch_sums(logp.detach(), mb.old_logprobs, mb.loss_mask))
        ref_logp = None
        if algo.kl_beta > 0:
            with torch.no_grad():
                ref_logp = self._logprobs(self.ref, mb)
        # A token the sampler drew outside the learner's top-k/top-p set (a near-tie at the
        # boundary, sampler and learner numerics differing) has logp -inf: it is left out of
        # the loss rather than turning it into inf/NaN (counted as `mismatch_excluded_fraction`).
        scored = torch.isfinite(logp) if ref_logp is None else torch.isfinite(logp) & torch.isfinite(ref_logp)
        mask = mb.loss_mask * scored
        logp = torch.where(scored, logp, torch.zeros_like(logp))
        if ref_logp is not None:
            ref_logp = torch.where(scored, ref_logp, torch.zeros_like(ref_logp))
        out = policy_loss(
            logp, mb.old_logprobs, mb.advantages, mask, totals=totals,
            aggregation=algo.loss_aggregation, clip_eps_low=algo.clip_eps_low,
            clip_eps_high=algo.clip_eps_high, is_cap=algo.is_cap, is_level=algo.is_level,
            ref_logprobs=ref_logp, kl_beta=algo.kl_beta)
        out.loss.backward()
        return out

    def state_dict(self) -> dict[str, Any]:
        """Sharded (FSDP): without AdamW, whose shards the checkpoint writes with DCP (`fsdp`)."""
        out = {"scheduler": self.scheduler.state_dict(), "updates": self.updates}
        return out if self.sharded else {"optimizer": self.optimizer.state_dict(), **out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
