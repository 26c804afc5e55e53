"""shared.stop_tokens on real tokenizers: the model's eos ids (generation config, a list or an
int, and the tokenizer's), the chat template's turn end found by rendering a conversation, and
no turn end where the template writes plain text after a message or there is no template."""

import json

import pytest

from shared.protocol import FinishReason
from shared.stop_tokens import StopTokens, generation_eos_ids, stop_tokens, turn_end_id
from tests.helpers.tiny_model import build_tokenizer
from tests.helpers.tiny_qwen2 import ENDOFTEXT, IM_END, build_qwen2_tokenizer, build_tiny_qwen2


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("q") / "qwen2")


def test_qwen_chat_turn_end_differs_from_eos(qwen2):
    tok = build_qwen2_tokenizer()
    eos, im_end = tok.convert_tokens_to_ids(ENDOFTEXT), tok.convert_tokens_to_ids(IM_END)
    assert eos != im_end and generation_eos_ids(qwen2) == [eos]
    chat = stop_tokens(tok, chat_template=True, model_path=qwen2)
    assert chat == StopTokens(eos=(eos,), turn_end=(im_end,)) and chat.ids == (eos, im_end)
    assert chat.reason(im_end) == FinishReason.TURN_END and chat.reason(eos) == FinishReason.STOP
    # Raw prompts: the chat template's turn end is no stop token.
    assert stop_tokens(tok, chat_template=False, model_path=qwen2) == StopTokens(eos=(eos,))


def test_every_generation_config_eos_id_and_no_duplicate_turn_end(qwen2, tmp_path):
    tok = build_qwen2_tokenizer()
    im_end = tok.convert_tokens_to_ids(IM_END)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [im_end, 7]}))
    stops = stop_tokens(tok, chat_template=True, model_path=tmp_path)
    # Listed eos ids first, then the tokenizer's; the turn end is already an eos: reason STOP.
    assert stops == StopTokens(eos=(im_end, 7, tok.eos_token_id)) and stops.reason(im_end) == FinishReason.STOP


def test_config_json_when_there_is_no_generation_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 5}))
    assert generation_eos_ids(tmp_path) == [5]
    assert generation_eos_ids(tmp_path / "absent") == []


def test_plain_text_after_a_message_is_not_a_stop_token():
    tok = build_tokenizer()  # char-level, no chat template at all
    assert turn_end_id(tok) is None
    tok.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    assert turn_end_id(tok) is None  # "\n" follows the message: never a stop id
    assert stop_tokens(tok, chat_template=True) == StopTokens(eos=(tok.eos_token_id,))


def test_llama3_style_eot_token():
    from tokenizers import AddedToken

    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [AddedToken("<|eot_id|>", special=True)]})
    tok.chat_template = ("{% for m in messages %}<|start|>{{ m.role }}\n\n{{ m.content }}<|eot_id|>{% endfor %}"
                         "{% if add_generation_prompt %}<|start|>assistant\n\n{% endif %}")
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert turn_end_id(tok) == eot
    assert stop_tokens(tok, chat_template=True).turn_end == (eot,)
