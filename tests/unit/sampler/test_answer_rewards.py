"""The lenient last-number reward: what it accepts and refuses, and that a config can name it."""

import pytest

from services.sampler.answer_rewards import last_number, last_number_reward
from services.sampler.rewards import reward_spec
from shared.config import TaskConfig

CASES = [
    ("10 + 8 = 18.\n\nSo the calculated result of 10 + 8 is 18.", "18", 1.0),
    ("10 + 8 = 18, which is the result of 10 and 8", "18", 0.0),  # the last number decides
    ("The answer is -4", "-4", 1.0),
    ("It costs 1,234 dollars.", "1234", 1.0),
    ("Total: 28080", "#### 28,080", 1.0),  # GSM8K reference
    ("About 2.50 each", "2.5", 1.0),
    ("3, 4", "34", 0.0),  # a list is not a digit group
    ("no number here", "7", 0.0),
    ("7", "seven", 0.0),  # a reference without a number scores nothing
    ("<answer>12</answer>", "12", 1.0),
]


@pytest.mark.parametrize("completion,answer,expected", CASES)
def test_last_number_reward(completion, answer, expected):
    assert last_number_reward(completion, answer) == expected


def test_last_number():
    assert last_number("a 1 b 22 c 3.5.") == 3.5
    assert last_number("") is None


def test_config_names_it_through_the_allowlist():
    cfg = TaskConfig(reward="services.sampler.answer_rewards:last_number_reward",
                     reward_allowlist=["services.sampler.answer_rewards"])
    assert reward_spec(cfg).kind == "function"
