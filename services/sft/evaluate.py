"""Scoring a policy on a task's problems with HF generate (greedy by default), on the SFT side.

Owns "how accurate is this model folder on these problems" for `dashrl sft --config`, the demo
policy's start accuracy and the calibration benchmark. Prompts are `shared.tasks.PromptRenderer`
ids, left-padded as the sampler's transformers backend pads them, and a problem counts as solved
at the sampler's threshold (`shared.tasks.SOLVED`), so on the same held-out problems, verifier
and greedy decoding this equals the sampler's version-0 eval. Verifiers are passed in as
`verify(completion, problem) -> float`; `reasoning_gym_verifier` is the sampler's reasoning-gym
one (reasoning-gym's own scorer on the last <answer>...</answer>; partial credit for answers that
merely contain the oracle does not count as solved).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from shared.tasks import SOLVED, Problem, PromptRenderer

Verify = Callable[[str, Problem], float]


def answer_text(completion: str) -> str | None:
    """The answer in a completion: the text inside the last <answer> tags (None without them),
    exactly what the sampler's reasoning-gym verifier scores."""
    from reasoning_gym.utils import extract_answer

    return extract_answer(completion)


def reasoning_gym_verifier(name: str, params: dict) -> Verify:
    """The sampler's reasoning-gym verifier: the dataset's scorer on the completion's answer."""
    import reasoning_gym

    scorer = reasoning_gym.create_dataset(name, size=1, seed=0, **params).score_answer
    return lambda completion, problem: scorer(answer_text(completion), problem.entry)


def left_pad(prompts: Sequence[list[int]], pad_id: int):
    """(ids, attention_mask), each (B, T): every prompt ends at the last column."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids, mask


def generate(model, tokenizer, prompts: Sequence[list[int]], *, max_new_tokens: int = 8, batch_size: int = 256,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0,
             num_return_sequences: int = 1) -> list[str]:
    """Completions of prompt token ids (decoded, special tokens dropped), `num_return_sequences`
    per prompt in order."""
    import torch

    out: list[str] = []
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                  num_return_sequences=num_return_sequences)
    if do_sample:
        kwargs.update(temperature=temperature, top_k=top_k or None, top_p=1.0)
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            ids, mask = left_pad(prompts[i : i + batch_size], tokenizer.pad_token_id)
            seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)  # (B * n, P + C)
            out += tokenizer.batch_decode(seqs[:, ids.shape[1]:], skip_special_tokens=True)
    return out


def scores(model, renderer: PromptRenderer, problems: Sequence[Problem], verify: Verify,
           max_new_tokens: int = 8) -> list[float]:
    """The verifier's score of one greedy completion per problem."""
    if not problems:
        return []
    completions = generate(model, renderer.tokenizer, [renderer.prompt_ids(p.question) for p in problems],
                           max_new_tokens=max_new_tokens)
    return [float(verify(c, p)) for c, p in zip(completions, problems)]


def accuracy(model, renderer: PromptRenderer, problems: Sequence[Problem], verify: Verify,
             max_new_tokens: int = 8) -> float:
    """Greedy accuracy of `model` on `problems` (0..1): the fraction the verifier calls solved."""
    got = scores(model, renderer, problems, verify, max_new_tokens)
    return sum(s >= SOLVED for s in got) / len(got) if got else 0.0
