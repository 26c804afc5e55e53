"""Rollouts from a scripted policy: fixed completions per prompt, honest log-probs and rewards.

The "policy" samples nothing: every prompt gets the same G completions, half rewarded. Their
log-probs are computed with a real forward pass of the model that produced them, so the
learner's importance ratios are true ones, and `policy_version` says which version that was.
Used by the learner's integration tests and its benchmark.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import torch

from shared.algo import group_advantages, keep_mask
from shared.protocol import RolloutBatch, Sample

GOOD = ["yes", "yes!"]
BAD = ["no", "nope"]


def prompts(n: int) -> list[str]:
    return [f"q{i}: {i % 7}+{i % 5}=" for i in range(n)]


class ScriptedPolicy:
    def __init__(self, model_dir: str | Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.eos = self.tokenizer.eos_token_id

    def encode(self, text: str, eos: bool = False) -> np.ndarray:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids + ([self.eos] if eos else [])
        return np.asarray(ids, dtype=np.int32)

    @torch.no_grad()
    def logprobs(self, prompt_ids: np.ndarray, completion_ids: np.ndarray) -> np.ndarray:
        """(C,) log p(completion token | prefix) under the model (no temperature, no top-k: the
        learner tests' configs, `learner_run.write_config`, sample at temperature 1 untruncated)."""
        ids = torch.from_numpy(np.concatenate([prompt_ids, completion_ids]).astype(np.int64))[None]
        logits = self.model(input_ids=ids).logits[0, :-1].float()  # (L-1, V)
        lp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        return lp[len(prompt_ids) - 1 :].numpy().astype(np.float32)

    def batch(self, run_id: str, prompt_texts: list[str], *, policy_version: int = 0, first_group: int = 0,
              threshold: float = 0.1, batch_id: str | None = None) -> RolloutBatch:
        """One rollout batch: G = 4 completions per prompt (2 rewarded), advantages, filtered."""
        rows, rewards, groups = [], [], []
        for g, text in enumerate(prompt_texts):
            p = self.encode(text)
            for completion, reward in [(c, 1.0) for c in GOOD] + [(c, 0.0) for c in BAD]:
                c = self.encode(completion, eos=True)
                rows.append((p, c, self.logprobs(p, c)))
                rewards.append(reward)
                groups.append(first_group + g)
        adv = group_advantages(np.array(rewards), np.array(groups))
        keep = keep_mask(adv, threshold)
        samples = [Sample(p, c, lp, rewards[i], float(adv[i]), groups[i])
                   for i, (p, c, lp) in enumerate(rows) if keep[i]]
        return RolloutBatch.from_samples(
            samples, run_id=run_id, batch_id=batch_id or uuid.uuid4().hex, sampler_id="scripted",
            policy_version=policy_version, created_at=time.time(),
            stats={"kept_fraction": float(keep.mean()), "reward_mean": float(np.mean(rewards)),
                   "num_samples": float(len(rows)), "completion_tokens": float(sum(len(c) for _, c, _ in rows))})

    @torch.no_grad()
    def mean_logprob(self, model, texts: list[str], completions: list[str]) -> float:
        """Mean per-token log-prob of `completions` after each prompt under `model`."""
        saved, self.model = self.model, model
        try:
            vals = [self.logprobs(self.encode(t), self.encode(c, eos=True)).mean() for t in texts for c in completions]
        finally:
            self.model = saved
        return float(np.mean(vals))
