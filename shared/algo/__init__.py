"""Pure math of DASH: group advantages, gradient filtering (numpy) and the policy loss (torch).

`advantages` and `filtering` import numpy only, so the sampler and the control plane can use
them without torch; import `shared.algo.loss` explicitly where torch is available.

DASH on one map: each part of the algorithm, the config field that sets it and the function that
does it (docs/walkthrough.md follows one rollout through all of them; tests/unit/test_doc_references.py
checks that every `file:function` here exists).

| DASH component | config field | done by |
|---|---|---|
| preemptive sampling: one generation call of M prompts x G completions per policy version | `sampler.sampling_batch_prompts` (M), `sampler.group_size` (G) | services/sampler/loop.py:SamplerLoop.generate |
| ... trained in small micro-batches | `learner.train_batch_size`, `learner.micro_batch_size`, `learner.micro_batch_tokens` | services/learner/trainer.py:Trainer._micro_batches, services/learner/microbatches.py:pack_micro_batches |
| group advantage: (r - mean) / (std + eps) per prompt group | `algo.advantage` (grpo, mean_only, raw), `algo.advantage_eps` | shared/algo/advantages.py:group_advantages, called by services/sampler/rollout_assembly.py:assemble |
| gradient filtering: samples with abs(advantage) <= threshold never leave the sampler | `algo.filter_threshold` (None: off) | shared/algo/filtering.py:keep_mask, in services/sampler/rollout_assembly.py:assemble |
| policy loss: ratio to the sampler's log-probs, PPO clipping, truncated IS | `algo.clip_eps_low`, `algo.clip_eps_high`, `algo.is_cap`, `algo.is_level` | shared/algo/loss.py:policy_loss |
| loss aggregation | `algo.loss_aggregation` (token, sequence, dash) | shared/algo/loss.py:aggregate, with shared/algo/loss.py:BatchTotals.of |
| loss normaliser: the samples that reached the learner, or every sample generated (filtered ones too) | `algo.normalize_by` (kept, generated) | shared/algo/loss.py:BatchTotals.over_generated, counts summed in services/learner/loop.py:Learner._take |
| KL to a frozen reference (off: the paper's finding) | `algo.kl_beta` (0 loads no reference) | shared/algo/loss.py:policy_loss (k3), services/learner/model.py:load_reference |
| PPO variants: none (one update), multi (K passes), mini (K mini-batches) | `algo.ppo`, `algo.ppo_epochs` (K) | services/learner/microbatches.py:update_groups, looped over by services/learner/trainer.py:Trainer.train_step |
| sync or async sampling | `sampler.mode` | services/sampler/loop.py:SamplerLoop.step (sync: services/sampler/loop.py:sync_share, then services/sampler/weights_follower.py:WeightsFollower.wait_for_newer) |
| staleness bound: batches more than N versions old are skipped | `learner.max_staleness` | services/learner/loop.py:Learner._take |
| log-probs under the sampling distribution | `sampler.temperature`, `sampler.top_k`, `sampler.top_p` | shared/algo/logprobs.py:token_logprobs, services/learner/scoring.py:completion_logprobs |
| sampler/learner mismatch figures | (always on) | shared/algo/mismatch.py:mismatch_sums |
| prompt sharing (dashrl's addition: one row per prompt group) | `learner.share_prompts` | services/learner/prompt_sharing.py:pack_shared, services/learner/prompt_sharing.py:collate_shared |
| weight versions to the samplers | `learner.publish_every`, `learner.weight_store` | services/learner/loop.py:Learner._publish, services/sampler/weights_follower.py:WeightsFollower.poll |
"""

from shared.algo.advantages import group_advantages
from shared.algo.filtering import keep_mask

__all__ = ["group_advantages", "keep_mask"]
