"""`\\boxed{...}` groups in text: the one reading of LaTeX answer boxes that the MATH verifier
(the completion's and the reference's answer) and dataset loading (`answer_from: boxed`, MATH's
worked solutions) share. Pure string code, no imports beyond `re`."""

from __future__ import annotations

import re

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")


def box_contents(text: str) -> list[str | None]:
    """The contents of the top-level `\\boxed{...}` / `\\fbox{...}` groups of `text`, in order;
    None for a group whose braces never close (a completion cut off inside its answer), which is
    then the last one: everything after it lies inside it."""
    found: list[str | None] = []
    pos = 0
    while (m := _BOX_OPEN.search(text, pos)) is not None:
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:
            found.append(None)
            break
        found.append(text[m.end() : i - 1])
        pos = i
    return found


def last_boxed(text: str) -> str | None:
    """The contents of the last complete top-level box of `text` (stripped), or None when it has
    none: MATH's answer inside its worked solution."""
    return next((c.strip() for c in reversed(box_contents(text)) if c is not None), None)
