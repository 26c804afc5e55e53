"""Final-answer checking for MATH- and GSM8K-style tasks, on top of math-verify 0.9.0.

Owns what counts as an answer on each side and how the two are compared:

- reference: the text after its last `####` (a GSM8K worked solution, `#### 1,234`), else the
  content of its last `\\boxed{}` (a whole MATH solution), else the whole text (a bare MATH
  answer such as `\\frac{\\sqrt3}{2}` or `\\left( 3, \\frac{\\pi}{2} \\right)`);
- completion: the content of its last `\\boxed{}` (or `\\fbox{}`), else the rest of the line
  after its last `####`, else nothing (scores 0: no stray number is ever taken as the answer).

Both answers are then read as LaTeX by one path (`parse_answer`): math-verify's default
`parse()` reads LaTeX only inside `$...$`, `\\[...\\]` or `\\boxed{}`, so a bare reference read
by it parses to nothing or to a fragment; here each answer is wrapped in `\\boxed{}` and parsed
with a boxed-only extraction config. math-verify's `verify()` then compares them by value
(symbolically, numerically to 6 decimals for floats, sets unordered, tuples ordered). When an
answer cannot be read as math, the two normalised strings must be equal.

No timeouts here: math-verify's own are signal based (main thread only) and turned off; the
reward worker process bounds each whole call with one SIGALRM (see `rewards.score_one`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
from math_verify import LatexExtractionConfig, parse, verify

from shared.tasks.boxed import box_contents

GSM8K_MARK = "####"
# Digit-group separators that LaTeX renders as nothing or a thin space: `1 234`, `10\,000`,
# `10~000` (`10,\!000` and `1{,}000` math-verify already reads as 10000 and 1000).
_DIGIT_GAP = re.compile(r"(?<=\d)(?:\s|\\[,;: ]|~)+(?=\d)")
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\s*\{(\d+)\}")  # 0.\overline{3}, 1.2\overline{45}
_TRAILING_STOP = re.compile(r"(?<!\\)\.\s*$")  # "5." or "\frac{1}{2}." at the end of an answer
# Units after a value are dropped (not compared): a trailing \text{...} of words (`4\text{ cm}`,
# `100\pi\text{ cm}^2`) or a unit word after a number (`18 dollars`, `12 square feet`).
# math-verify's own unit list is turned off: it strips single letters too, so `3t` and `x^2+2d`
# lost their variable and equalled 3 and x^2+2.
_POWER = r"(?:\^\s*\{?\s*[23]\s*\}?)?"
# One letter only after a space (`5\text{ m}`): `2\mathrm{i}` and `\mathrm{e}` are not units.
_UNIT_TEXT = re.compile(r"\\(?:text|textrm|textnormal|mathrm|mbox)\s*"
                        r"\{(?:\s+[A-Za-z][A-Za-z .]*|\s*[A-Za-z][A-Za-z .]*[A-Za-z.])\}\s*" + _POWER + r"\s*$")
_UNIT_WORD = re.compile(
    r"(?<=[\d}])\s*(?:square |sq\.? |cubic )?(?:cm|mm|km|inch(?:es)?|ft|feet|foot|yards?|miles?|met(?:er|re)s?"
    r"|kg|mg|lbs?|pounds?|ounces?|oz|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?"
    r"|dollars?|cents?|degrees?|units?|lit(?:er|re)s?|gallons?|mph)" + _POWER + r"\s*$")
# A completion's `#### N` line (GSM8K's answer format): a number only, `$` and commas allowed.
_HASH_NUMBER = re.compile(r"\\?\$?\s*([-+]?\d[\d,]*(?:\.\d+)?)\s*\.?")
# math-verify's LaTeX extraction reading only a `\boxed{}` (no anchors, no bare numbers), with its
# default normalisation (`\text{}`, `\dfrac`, `\left`, `\$`, `\%`, `10,\!000`, `\sqrt3`) but no units.
_BOXED_ONLY = LatexExtractionConfig(
    boxed_match_priority=0, try_extract_without_anchor=False,
    normalization_config=NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True,
                                             boxed="all", equations=False))


def reference_answer(reference: str) -> str:
    """The final answer inside a reference (see the module docstring)."""
    if GSM8K_MARK in reference:
        return _first_line(reference.rsplit(GSM8K_MARK, 1)[1])
    boxes = box_contents(reference)
    if boxes and boxes[-1] is not None:
        return boxes[-1]
    return reference


def completion_answer(completion: str) -> str | None:
    """The completion's final answer: its last `\\boxed{}`, else the number on its last `####`
    line, else None.
    A last `\\boxed{` that never closes is no answer (an earlier box is not taken instead: the
    model was still writing its final one)."""
    boxes = box_contents(completion)
    if boxes:
        return boxes[-1]
    if GSM8K_MARK in completion:  # a markdown heading "#### Step 2" is not an answer: numbers only
        m = _HASH_NUMBER.fullmatch(_first_line(completion.rsplit(GSM8K_MARK, 1)[1]))
        return m.group(1) if m else None
    return None


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def tidy(answer: str) -> str:
    """What math-verify's normalisation misses or gets wrong: digit groups split by spaces or thin
    spaces (latex2sympy reads `1 234` as 235 and `10\\,000` as 10*0), repeating decimals (which
    it cannot read: `0.\\overline{3}` becomes `\\frac{1}{3}`), a closing full stop, and units."""
    answer = _DIGIT_GAP.sub("", answer.strip())
    answer = _TRAILING_STOP.sub("", _REPEATING.sub(_repeating_fraction, answer)).strip()
    for _ in range(2):  # `5\text{ cm}^2.`, `3 square feet \text{ total}`
        for unit in (_UNIT_TEXT, _UNIT_WORD):
            rest = unit.sub("", answer).strip()
            answer = rest or answer  # a lone `\text{Evelyn}` is the answer, not a unit
    return answer


def _repeating_fraction(m: re.Match) -> str:
    whole, fixed, period = m.groups()
    shift = 10 ** len(fixed)
    value = int(whole or 0) + Fraction(int(fixed or 0), shift) + Fraction(int(period), shift * (10 ** len(period) - 1))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


@lru_cache(maxsize=256)  # a reference is parsed once for the G completions of its prompt
def parse_answer(answer: str) -> tuple:
    """A bare LaTeX answer -> math-verify's parse result: (sympy value, normalised string), or
    (normalised string,) when it does not parse as math, or () when it is empty. A tuple, so
    the cache hands out nothing a caller can append to (`verify` does not change the values)."""
    answer = tidy(answer)
    if not answer:
        return ()
    # first_match: the one boxed group is the answer; its normalised string is appended as the
    # fallback, which `verify` compares string to string when one side does not parse.
    return tuple(parse("\\boxed{" + answer + "}", [_BOXED_ONLY], fallback_mode="first_match",
                       extraction_mode="first_match", parsing_timeout=None))


def answers_match(reference: str, completion: str) -> bool:
    """True when the completion's final answer equals the reference's (see the module docstring)."""
    pred = completion_answer(completion)
    if pred is None:
        return False
    gold, target = parse_answer(reference_answer(reference)), parse_answer(pred)
    if not gold or not target:
        return False
    return verify(list(gold), list(target), timeout_seconds=None)
