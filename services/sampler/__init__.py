"""The sampler service: generates rollouts with the newest policy, scores and filters them,
and pushes them to the learner through Redis (see docs/sampler.md)."""
