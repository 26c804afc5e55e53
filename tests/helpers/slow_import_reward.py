"""A verifier whose import takes 3 s, as math-verify's does (~3 s here): for the reward pool's
start-up rule (a pool still importing its verifier is not judged stuck)."""

import time

time.sleep(3.0)


def always_one(completion: str, answer: str) -> float:
    return 1.0
