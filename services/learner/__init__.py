"""The DASH learner service: trains on rollouts from the stream, publishes weight versions,
checkpoints, and commits each rollout exactly once (see docs/learner.md)."""
