"""The learner loop: gather a step's rollouts -> train -> publish weights -> commit.

Rank 0 owns everything that touches Redis or the disk; other ranks receive each step's
samples from it (see `distributed`). Order within a step, and why:
1. gather whole rollout entries until `train_batch_size` samples (stale and empty entries are
   set aside as skipped; duplicates of committed batches are acked at once);
2. train (all ranks), version += 1;
3. publish the new version (every `publish_every` steps), then announce it; a whole model is
   snapshotted in the served dtype here and written, hashed and announced by a background
   thread (`publisher`), which every commit and the shutdown wait for;
4. write the step's line to metrics.jsonl (before any commit, so a committed step always has
   its line);
5. commit every `checkpoint_every` steps, or sooner when the entries held unacked reach half
   of `streams.max_backlog` (the samplers would otherwise block on us): checkpoint, record
   the batch ids in `RunKeys.trained`, and only then ack. See docs/learner.md.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from services.learner.microbatches import TrainSample, train_samples
from services.learner.parts import Gathered, Parts
from services.learner.checkpoint import LearnerState, save_checkpoint
from services.learner.distributed import DistContext, broadcast_bytes
from services.learner.fsdp import ShardedPolicy
from services.learner.ledger import Ledger
from services.learner.lora import save_final_model
from services.learner.publisher import background_publisher
from services.learner.steplog import StepLog
from services.learner.trainer import StepStats, Trainer
from shared.algo.loss import GeneratedCounts
from shared.config import RunConfig
from shared.heartbeat import HeartbeatSender
from shared.protocol import LearnerReport, RolloutBatch, Sample, decode, encode
from shared.weights import snapshot_model

log = logging.getLogger(__name__)
HEARTBEAT_S = 2.0


class Learner:
    def __init__(self, cfg: RunConfig, run_dir: Path, ctx: DistContext, trainer: Trainer, tokenizer: Any,
                 state: LearnerState, parts: Parts | None, instance_id: str = "learner-0",
                 sharded: ShardedPolicy | None = None, publish_in_background: bool = True) -> None:
        self.cfg, self.run_dir, self.ctx, self.trainer, self.tokenizer = cfg, run_dir, ctx, trainer, tokenizer
        self.state, self.parts, self.instance_id = state, parts, instance_id
        self.sharded = sharded  # FSDP: publishing and checkpoints are collectives rank 0 leads
        self.ledger = Ledger(state.committed)
        self.steplog = StepLog(run_dir / "metrics.jsonl", parts.metrics if parts else None,
                               parts.tracking if parts else None)
        self.signalled = False
        self.stop_requested = False
        # rank 0 beats from a thread too, so a long step never looks like a dead learner
        self.heartbeat = HeartbeatSender(parts.runstate, instance_id, self.report, HEARTBEAT_S) if parts else None
        self._step_report = LearnerReport()  # the numbers of the latest step
        self._skips: dict[str, list[str]] = {}  # reason -> batch ids skipped since the last step line
        self._committed_step = state.step
        self._samples_total = 0
        self.publisher = background_publisher(parts, self.trainer.model, self.sharded, self.tokenizer) \
            if publish_in_background else None

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until max_steps or a stop; returns True when the run is finished (not merely
        interrupted by a signal, after which a restarted learner resumes)."""
        if self.heartbeat is not None:
            self.heartbeat.start()
        try:
            while self.state.step < self.cfg.learner.max_steps:
                gathered = self._gather() if self.ctx.is_main else None
                shared = self._broadcast_samples(gathered)
                if shared is None:
                    break
                samples, generated = shared
                step = self.state.step + 1
                self._set_status("training")
                stats = self.trainer.train_step(samples, step, generated)
                self.state.step = self.state.policy_version = step
                if self.ctx.is_main:
                    self._after_step(gathered, stats)
            finished = self.state.step >= self.cfg.learner.max_steps or self.stop_requested
            if self.ctx.is_main:
                self._finish(finished)
            elif self.sharded is not None:
                self.sharded.follow()  # rank 0's final publish, commit and save
            return finished
        except BaseException:
            if self.heartbeat is not None:  # the one failure path: the last heartbeat says so
                self.heartbeat.stop("failed")
            raise
        finally:
            if self.parts is not None and self.parts.tracking:
                self.parts.tracking.close()  # bounded by each tracker's close_timeout_s

    def _broadcast_samples(self, gathered: Gathered | None) -> tuple[list[TrainSample], GeneratedCounts] | None:
        """Rank 0's samples and generated counts on every rank (None: stop)."""
        if not self.ctx.enabled:
            return (gathered.samples, gathered.generated()) if gathered else None
        data = None
        if gathered is not None:
            rows = [Sample(s.prompt_ids, s.completion_ids, s.logprobs, 0.0, s.advantage, 0) for s in gathered.samples]
            data = encode(RolloutBatch.from_samples(
                rows, run_id=self.cfg.run_id, batch_id=f"step-{self.state.step + 1}", sampler_id=self.instance_id,
                policy_version=self.state.policy_version, created_at=time.time(),
                stats={"num_samples": gathered.generated_sequences, "completion_tokens": gathered.generated_tokens}))
        data = broadcast_bytes(self.ctx, data, self.trainer.place.device, on_op=self.sharded and self.sharded.handle)
        if data is None:
            return None
        if self.ctx.is_main:
            return gathered.samples, gathered.generated()
        batch = decode(data, expect=RolloutBatch)
        return train_samples(batch)[0], GeneratedCounts(batch.stats["num_samples"], batch.stats["completion_tokens"])

    # ---- rank 0: gathering ----------------------------------------------------------------
    def _should_stop(self) -> bool:
        if not self.stop_requested and self.parts.runstate.stop_requested():
            log.info("stop requested through the run state")
            self.stop_requested = True
        return self.signalled or self.stop_requested

    def _gather(self) -> Gathered | None:
        g, t0 = Gathered(), time.perf_counter()
        p, lc = self.parts, self.cfg.learner
        while len(g.samples) < lc.train_batch_size:
            if self._should_stop():
                return None  # gathered entries stay unacked: redelivered to the resumed learner
            self._set_status("waiting" if not g.samples else "gathering")
            deliveries = p.reader.read(1)
            if deliveries:
                self._take(deliveries[0], g)
            elif p.reader.backlog() >= self.cfg.streams.max_backlog:
                # samplers are blocked until we ack: commit what is done, or train what we have
                if self.ledger.held_entries():
                    self._commit()
                elif g.samples:
                    log.warning("backlog full with %d of %d samples gathered: training a short step",
                                len(g.samples), lc.train_batch_size)
                    break
        g.wait_s = time.perf_counter() - t0
        return g

    def _take(self, d: Any, g: Gathered) -> None:
        batch: RolloutBatch = d.message
        verdict = self.ledger.classify(d.entry_id, batch.batch_id)
        if verdict == "redelivered":
            return
        if verdict == "committed":
            self.parts.reader.ack([d.entry_id])
            return self._count_skip("duplicate", batch)
        if verdict == "duplicate":
            self.ledger.attach(d.entry_id, batch.batch_id)
            return self._count_skip("duplicate", batch)
        lag = self.state.policy_version - batch.policy_version
        if lag > self.cfg.learner.max_staleness:
            self.ledger.skip(d.entry_id, batch.batch_id)
            return self._count_skip("stale", batch, lag)
        samples, dropped = train_samples(batch)
        if dropped:
            log.warning("batch %s: %d samples without prompt or completion tokens dropped", batch.batch_id, dropped)
        if not samples:
            self.ledger.skip(d.entry_id, batch.batch_id)
            return self._count_skip("empty", batch)
        self.ledger.gather(d.entry_id, batch.batch_id)
        g.samples.extend(samples)
        g.batch_ids.append(batch.batch_id)
        g.staleness.append(max(0, lag))
        if "kept_fraction" in batch.stats:
            g.kept.append(batch.stats["kept_fraction"])
        if "reward_mean" in batch.stats:
            g.rewards.append(batch.stats["reward_mean"])
        # batches without the sampler's stats (older or hand-made ones) count what they hold
        g.generated_sequences += batch.stats.get("num_samples", len(samples))
        g.generated_tokens += batch.stats.get("completion_tokens", float(sum(len(s.completion_ids) for s in samples)))

    def _count_skip(self, reason: str, batch: RolloutBatch, lag: int | None = None) -> None:
        log.info("skipping batch %s (%s%s)", batch.batch_id, reason, f", {lag} versions behind" if lag else "")
        if self.parts.metrics is not None:
            self.parts.metrics.skipped.labels(reason=reason).inc()
        self._skips.setdefault(reason, []).append(batch.batch_id)

    # ---- rank 0: after a step -------------------------------------------------------------
    def _after_step(self, g: Gathered, stats: StepStats) -> None:
        self.ledger.step_done(g.batch_ids)
        seconds = {"wait": g.wait_s, **stats.seconds, "publish": 0.0}
        if self.state.step % self.cfg.learner.publish_every == 0:
            seconds["publish"] = self._publish()
        train_s = stats.seconds["forward_backward"] + stats.seconds["optimizer"]
        record = {
            "step": self.state.step, "policy_version": self.state.policy_version, "time": time.time(),
            "loss": stats.loss, "policy_loss": stats.policy_loss, "kl": stats.kl, "grad_norm": stats.grad_norm,
            "lr": stats.lr, "samples": stats.samples, "tokens": stats.tokens,
            "tokens_processed": stats.tokens_processed, "completion_tokens": stats.completion_tokens,
            "tokens_per_s": stats.tokens_processed / train_s if train_s > 0 else 0.0,
            "clip_fraction": stats.clip_fraction, "ratio_mean": stats.ratio_mean, "adv_abs_mean": stats.adv_abs_mean,
            "kept_fraction": float(np.mean(g.kept)) if g.kept else None, "staleness": g.staleness,
            "reward_mean": float(np.mean(g.rewards)) if g.rewards else None,
            "updates": stats.updates, "batch_ids": g.batch_ids, "skipped": self._skips,
            "seconds": seconds, "is_truncated_fraction": stats.truncated_fraction,
            **{f"mismatch_{k}": v for k, v in stats.mismatch.items()},
        }
        self._skips = {}
        self.steplog.write(record)
        self._samples_total += stats.samples
        self._step_report = LearnerReport(
            samples=self._samples_total, loss=stats.loss, grad_norm=stats.grad_norm, tokens_per_s=record["tokens_per_s"],
            adv_abs_mean=stats.adv_abs_mean, staleness=float(np.mean(g.staleness)),
            kept_fraction=record["kept_fraction"], reward_mean=record["reward_mean"])
        threshold = max(1, self.cfg.streams.max_backlog // 2)
        if self.state.step % self.cfg.learner.checkpoint_every == 0 or self.ledger.in_flight() >= threshold:
            self._commit()
        self.heartbeat.beat("waiting")  # the new step's numbers at once

    def _publish(self) -> float:
        """Publish the current version; returns the seconds the training loop spent on it."""
        t0 = time.perf_counter()
        version, step, dtype = self.state.policy_version, self.state.step, self.trainer.place.serve_dtype
        if self.publisher is not None:  # the snapshot here; write, hash, fsync, announce off-thread
            snap = snapshot_model(self.trainer.model, dtype)
            self._push(version, step, list(snap.tensors.items()))  # the fast path first
            self.publisher.submit(snap, version, step)
        else:
            model = self._full_model()  # FSDP: a collective, so gathered once for both
            self._push(version, step, None, lambda: model)
            msg = self.parts.store.publish(model, self.tokenizer, version, step,
                                           dtype=dtype)  # the sampler's dtype, not the master's
            self.parts.announce.publish(msg)
        # a checkpoint records this only after `_commit` waited for the publish to complete
        self.state.last_published = version
        return time.perf_counter() - t0

    def _push(self, version: int, step: int, named: list | None, model: Any = None) -> None:
        """`weights.transport: broadcast`: push this version first (the store copy follows)."""
        if self.parts is not None and self.parts.pusher is not None:
            self.parts.pusher.push_policy(version, step, named, model, self.trainer.place.serve_dtype)

    def _wait_published(self) -> None:
        """The background publish done (raises PublishFailed, already logged and counted) and
        the version a checkpoint is about to claim synced to disk (written without fsync)."""
        if self.publisher is not None:
            self.publisher.wait()
            if self.state.last_published > 0:
                self.parts.store.make_durable(self.state.last_published)

    def _commit(self) -> None:
        """Checkpoint, then record the trained batch ids, then ack (that order: see module doc)."""
        t0 = time.perf_counter()
        self._wait_published()  # a checkpoint never claims a version that is not complete
        committed, entries, trained = self.ledger.to_commit()
        self.state.committed = committed
        save_checkpoint(self.run_dir, self.trainer.model, self.tokenizer, self.trainer.state_dict(), self.state,
                        write_model=self.sharded and self.sharded.write)
        if trained:
            self.parts.record_trained(trained)
        self.parts.reader.ack(entries)
        self.ledger.committed_now()
        self._committed_step = self.state.step
        if self.parts.metrics is not None:
            self.parts.metrics.step_seconds.labels(phase="commit").inc(time.perf_counter() - t0)
        log.info("committed step %d: %d entries acked", self.state.step, len(entries))

    def _finish(self, finished: bool) -> None:
        if self.state.step > 0 and self.state.last_published < self.state.policy_version:
            self._publish()
        if self.ledger.held_entries() or self._committed_step != self.state.step:
            self._commit()  # waits for the publish and syncs it first
        else:
            self._wait_published()
        if finished:
            final, tmp = self.run_dir / "final", self.run_dir / ".tmp-final"
            shutil.rmtree(tmp, ignore_errors=True)
            save_final_model(self._full_model(), self.tokenizer, tmp)  # LoRA: merged, adapter in adapter/
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            if self.parts.tracking:
                self.parts.tracking.artifact(final)
            self.parts.runstate.mark_learner_done()
        self.heartbeat.stop("finished" if finished else "stopped")
        if self.sharded is not None:
            self.sharded.release()
        log.info("learner %s at step %d", "finished" if finished else "stopped", self.state.step)

    def _full_model(self) -> Any:
        """The model to publish or save: FSDP's full weights gathered on rank 0 (a collective)."""
        return self.sharded.gathered() if self.sharded is not None else self.trainer.model

    # ---- rank 0: heartbeat ----------------------------------------------------------------
    def report(self) -> LearnerReport:
        """What the learner's heartbeat reports now."""
        return replace(self._step_report, policy_version=self.state.policy_version, step=self.state.step)

    def _set_status(self, status: str) -> None:
        """The state the next heartbeat reports (rank 0; other ranks send none)."""
        if self.heartbeat is not None:
            self.heartbeat.state = status
