"""The one prompt rule (shared/tasks/render.py): raw text verbatim with the tokenizer's BOS and no
EOS, chat templates writing their own special tokens, SFT targets = completion tokens + EOS."""

import pytest
from tokenizers import processors

from shared.tasks import Problem, PromptRenderer
from tests.helpers.tiny_model import build_tokenizer

TEMPLATE = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant]{% endif %}")


def plain_ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_raw_prompt_is_the_question_as_written():
    tok = build_tokenizer()
    r = PromptRenderer(tok, "")
    assert not r.uses_chat_template
    assert r.text("2+2=") == "2+2="  # nothing appended: the row's text is the prompt
    assert r.prompt_ids("2+2=") == plain_ids(tok, "2+2=")  # this tokenizer adds no special tokens
    assert PromptRenderer(tok, "Be brief.").text("2+2=") == "Be brief.\n\n2+2="


def test_raw_prompt_gets_the_tokenizers_bos_once():
    tok = build_tokenizer(add_bos=True)
    assert tok("x").input_ids[0] == tok.bos_token_id
    r = PromptRenderer(tok, "Be brief.")
    ids = r.prompt_ids("2+2=")
    assert ids == [tok.bos_token_id] + plain_ids(tok, "Be brief.\n\n2+2=")
    assert ids == tok("Be brief.\n\n2+2=").input_ids  # what the tokenizer itself would encode
    assert PromptRenderer(tok, "").prompt_ids("<s>x") == plain_ids(tok, "<s>x")  # already there: not doubled


def test_raw_prompt_never_ends_with_an_eos_the_tokenizer_would_append():
    tok = build_tokenizer()
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.bos_token_id), ("</s>", tok.eos_token_id)])
    assert tok("x").input_ids[-1] == tok.eos_token_id
    assert PromptRenderer(tok, "").prompt_ids("2+2=") == [tok.bos_token_id] + plain_ids(tok, "2+2=")


def test_chat_template_writes_its_own_special_tokens():
    tok = build_tokenizer(add_bos=True)
    tok.chat_template = TEMPLATE
    r = PromptRenderer(tok, "Be brief.")
    assert r.uses_chat_template
    assert r.text("2+2?") == "[system]Be brief.\n[user]2+2?\n[assistant]"
    assert r.prompt_ids("2+2?") == plain_ids(tok, r.text("2+2?"))  # no BOS added to a template's text
    assert PromptRenderer(tok, "").text("x") == "[user]x\n[assistant]"
    assert r.messages("x") == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]
    # A template that writes BOS itself: exactly one, as apply_chat_template(tokenize=True) gives.
    tok.chat_template = "{{ bos_token }}" + TEMPLATE
    ids = PromptRenderer(tok, "").prompt_ids("x")
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    want = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=True)
    assert ids == list(want["input_ids"])


@pytest.mark.parametrize("add_bos", [False, True])
def test_sft_target_is_the_completion_then_eos(add_bos):
    tok = build_tokenizer(add_bos)
    assert PromptRenderer(tok).completion_ids("\\boxed{4}") == plain_ids(tok, "\\boxed{4}") + [tok.eos_token_id]


def test_ids_are_cached_per_split_and_index():
    tok = build_tokenizer()
    r = PromptRenderer(tok, "")
    a, b = Problem(0, "one", "1"), Problem(0, "two", "2")
    assert r.ids(a) == plain_ids(tok, "one")
    assert r.ids(b, "eval") == plain_ids(tok, "two") and r.ids(b) == plain_ids(tok, "one")
