"""Scoring a policy on reasoning-gym problems with HF generate (greedy by default).

Owns "how accurate is this model folder on this task" for the SFT side: the start accuracy the
demo policy reports and the numbers the calibration benchmark prints. A completion is right iff
the task's own scorer gives exactly 1.0 to the completion's <answer> (reasoning-gym gives partial
credit to answers that merely contain the oracle; accuracy does not count those).
"""

from __future__ import annotations

from typing import Any, Sequence

from services.sft.sft_data import render_prompt


def answer_text(completion: str) -> str | None:
    """The answer in a completion: the text inside the last <answer> tags (None without them),
    exactly what the sampler's reasoning-gym verifier scores."""
    from reasoning_gym.utils import extract_answer

    return extract_answer(completion)


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 8, batch_size: int = 256,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
             num_return_sequences: int = 1) -> list[str]:
    """Completions (decoded, special tokens dropped), `num_return_sequences` per prompt in order."""
    import torch

    tokenizer.padding_side = "left"
    out: list[str] = []
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                  num_return_sequences=num_return_sequences)
    if do_sample:
        kwargs.update(temperature=temperature, top_k=top_k or None, top_p=1.0)
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            texts = [render_prompt(tokenizer, p) for p in prompts[i : i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            seqs = model.generate(**enc, **kwargs)  # (B * n, P + C)
            out += tokenizer.batch_decode(seqs[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    return out


def accuracy(model, tokenizer, dataset, entries: Sequence[dict], max_new_tokens: int = 8) -> float:
    """Greedy accuracy of `model` on `entries` of a reasoning-gym `dataset` (0..1)."""
    if not entries:
        return 0.0
    completions = generate(model, tokenizer, [e["question"] for e in entries], max_new_tokens=max_new_tokens)
    right = sum(dataset.score_answer(answer_text(c), e) == 1.0 for c, e in zip(completions, entries))
    return right / len(entries)
