"""The stop-token check both backends' tests run on the tiny Qwen2 (tests/helpers/tiny_qwen2.py),
whose chat turn end `<|im_end|>` is not in its generation config's eos (`<|endoftext|>` only).

A random model emits `<|im_end|>` now and then (about 1 in 100 tokens): without the turn end in
the stop ids it runs past it; with the ids from `shared.stop_tokens.stop_tokens` every completion
ends at its first stop token, and the finish reason says which one it was."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from services.sampler.backends import GenerationBackend, SamplingSettings
from services.sampler.tasks import PromptRenderer
from shared.protocol import FinishReason
from shared.stop_tokens import stop_tokens

QUESTIONS = ["What is 2+3?", "Name a colour.", "Count to four:"]


def chat_prompts(model_dir: Path) -> tuple[PromptRenderer, list[list[int]]]:
    """The sampler's renderer for the folder's tokenizer and the QUESTIONS through it."""
    from transformers import AutoTokenizer

    renderer = PromptRenderer(AutoTokenizer.from_pretrained(model_dir))
    return renderer, [list(renderer.tokenizer(renderer.text(q), add_special_tokens=False)["input_ids"])
                      for q in QUESTIONS]


def check_stops_at_turn_end(backend: GenerationBackend, model_dir: Path, *, n: int = 16,
                            max_new_tokens: int = 24) -> Counter:
    """Run the check; returns how many completions ended for each reason."""
    renderer, prompts = chat_prompts(model_dir)
    stop = stop_tokens(renderer.tokenizer, chat_template=renderer.uses_chat_template, model_path=model_dir)
    assert len(stop.turn_end) == 1 and stop.turn_end[0] not in stop.eos
    im_end, eos = stop.turn_end[0], set(stop.eos)
    plain = SamplingSettings(n=n, temperature=1.0, max_new_tokens=max_new_tokens, seed=3)
    free = [c for g in backend.generate(prompts, plain) for c in g]
    assert any(im_end in c.token_ids[:-1].tolist() for c in free), "the model never ran past <|im_end|>"
    reasons: Counter = Counter()
    for c in (c for g in backend.generate(prompts, replace(plain, stop=stop)) for c in g):
        ids = c.token_ids.tolist()
        assert not (set(ids[:-1]) & (eos | {im_end})), "a completion ran past a stop token"
        assert len(c.logprobs) == len(ids)
        if c.finish_reason == FinishReason.TURN_END:
            assert ids[-1] == im_end
        elif c.finish_reason == FinishReason.STOP:
            assert ids[-1] in eos
        else:
            assert c.finish_reason == FinishReason.LENGTH and len(ids) == max_new_tokens
        reasons[c.finish_reason] += 1
    assert reasons[FinishReason.TURN_END] >= 3, reasons
    return reasons
