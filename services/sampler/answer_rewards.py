"""A lenient final-answer reward for models too weak to follow an answer format.

`last_number_reward(completion, answer)`: 1.0 when the last number written in the completion
equals the reference's number, else 0.0 — the "flexible extract" of lm-evaluation-harness's
GSM8K task. Named by a config as `task.reward: services.sampler.answer_rewards:last_number_reward`
(with this module in `task.reward_allowlist`). SmolLM2-135M-Instruct never writes reasoning-gym's
`<answer>` tags (0 of 128 sampled completions here), so the strict scorer gives it no signal; it
does end many answers on the right number ("10 + 8 = 18."). The reward is easy to game by
listing numbers, which a short completion cap limits; for real evaluation use the strict
verifiers (`services.sampler.rewards`).
"""

from __future__ import annotations

import re

# A signed integer or decimal, digit groups with commas allowed ("1,234.5"); "18." ends at 18.
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def last_number(text: str) -> float | None:
    """The value of the last number in `text`, or None when it has none."""
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def last_number_reward(completion: str, answer: str) -> float:
    """1.0 when the completion's last number equals the reference's (a GSM8K reference: the
    number after `####`), else 0.0."""
    ref = last_number(answer.rsplit("####", 1)[-1])
    got = last_number(completion)
    return 1.0 if ref is not None and got is not None and abs(got - ref) <= 1e-9 * max(1.0, abs(ref)) else 0.0
