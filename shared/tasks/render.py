"""How a problem becomes prompt token ids, and what follows the prompt in an SFT target: the one
rule that the sampler, `dashrl sft`, the demo policy and the TRL baseline all use.

The rule:
- **Chat template** (the tokenizer has one): the system prompt (when not '') as a system turn,
  the question as a user turn, the generation prompt appended; the template's text is tokenized
  with no special tokens added, because a template writes its own (BOS included), exactly as
  `apply_chat_template(tokenize=True)` and vLLM's chat do.
- **Raw** (no chat template): the question text as written, after the system prompt and a blank
  line when there is one; nothing appended (a separator the model should see belongs in the
  prompt text). Prefixed with the tokenizer's BOS when its own encoding adds one (Llama-style
  tokenizers do, GPT-2/Qwen-style ones do not); never a trailing EOS, even from a tokenizer that
  would append one.
- **SFT target**: the completion text tokenized on its own (the model generates it token by token
  after the prompt ids, so it is not merged with the prompt's last token), then the EOS token.
"""

from __future__ import annotations

from typing import Any

from shared.tasks.problems import Problem


class PromptRenderer:
    """Problem -> prompt token ids under the rule above; `ids` caches per (split, index)."""

    def __init__(self, tokenizer: Any, system_prompt: str = "") -> None:
        self.tokenizer, self.system_prompt = tokenizer, system_prompt
        self._cache: dict[tuple[str, int], list[int]] = {}
        bos = tokenizer.bos_token_id
        # Does this tokenizer's own encoding start with BOS? Probed once, on a one-letter text.
        self._bos = [bos] if bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos] \
            else []

    @property
    def uses_chat_template(self) -> bool:
        """True when prompts go through the tokenizer's chat template (its turn-end token then ends
        a completion, as well as EOS)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def messages(self, question: str) -> list[dict[str, str]]:
        """The chat messages of a prompt (system turn only when the system prompt is not '')."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": "user", "content": question}]

    def text(self, question: str) -> str:
        """The prompt text (special tokens that the rule adds as ids, such as a raw prompt's BOS,
        are not in it)."""
        if self.uses_chat_template:
            return self.tokenizer.apply_chat_template(self.messages(question), tokenize=False,
                                                      add_generation_prompt=True)
        return f"{self.system_prompt}\n\n{question}" if self.system_prompt else question

    def prompt_ids(self, question: str) -> list[int]:
        """Token ids of the prompt for `question` (not cached)."""
        ids = list(self.tokenizer(self.text(question), add_special_tokens=False)["input_ids"])
        if self.uses_chat_template or ids[:1] == self._bos:
            return ids
        return self._bos + ids

    def ids(self, problem: Problem, split: str = "train") -> list[int]:
        """`prompt_ids(problem.question)`, cached by split and index."""
        key = (split, problem.index)
        if key not in self._cache:
            self._cache[key] = self.prompt_ids(problem.question)
        return self._cache[key]

    def completion_ids(self, completion: str) -> list[int]:
        """The SFT target after the prompt: the completion's own tokens, then EOS (when defined)."""
        ids = list(self.tokenizer(completion, add_special_tokens=False)["input_ids"])
        eos = self.tokenizer.eos_token_id
        return ids + [eos] if eos is not None else ids
