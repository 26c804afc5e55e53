"""SFT rows -> tokens: the loss mask covers the completion and EOS only, the prompt ids are the
shared renderer's (what the sampler feeds the model), bad rows fail naming their line."""

import json

import pytest
import torch

from services.sft.sft_data import IGNORE, collate, encode_row, normalize_row, read_rows
from services.sft.tiny_llama import train_tokenizer
from shared.tasks import PromptRenderer
from tests.helpers.tiny_model import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([f"Calculate {a} + {b}. {a + b}" for a in range(20) for b in range(20)])


@pytest.fixture(scope="module")
def renderer(tok):
    return PromptRenderer(tok, "")


def test_answer_is_an_alias_of_completion():
    assert normalize_row({"prompt": "q", "answer": 7}) == {"prompt": "q", "completion": "7"}
    assert normalize_row({"prompt": "q", "completion": "c", "answer": "a"})["completion"] == "c"
    with pytest.raises(ValueError, match="missing 'completion'"):
        normalize_row({"prompt": "q"}, "f:3")
    with pytest.raises(ValueError, match="expected an object"):
        normalize_row(["q", "a"])


def test_read_rows_names_the_bad_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "a", "answer": "1"}) + "\n\n{not json\n")
    with pytest.raises(ValueError, match=r"d.jsonl:3: not JSON"):
        read_rows(path)
    path.write_text("")
    with pytest.raises(ValueError, match="no rows"):
        read_rows(path)


def test_prompt_goes_through_the_chat_template(tok, renderer):
    ex = encode_row(renderer, {"prompt": "Calculate 1 + 2.", "completion": "3"})
    prompt = tok(renderer.text("Calculate 1 + 2."), add_special_tokens=False).input_ids
    assert renderer.text("Calculate 1 + 2.") == "<|user|>Calculate 1 + 2.<|assistant|>"
    assert ex.input_ids[: len(prompt)] == prompt


def test_raw_prompt_ids_are_the_samplers_bos_included():
    tok = build_tokenizer(add_bos=True)  # no chat template; encodes with a leading <s>
    r = PromptRenderer(tok, "")
    ex = encode_row(r, {"prompt": "2+2=", "completion": "4"})
    assert ex.input_ids == r.prompt_ids("2+2=") + r.completion_ids("4")
    assert tok.convert_ids_to_tokens(ex.input_ids) == ["<s>", "2", "+", "2", "=", "4", "</s>"]
    assert ex.labels == [IGNORE] * 5 + ex.input_ids[5:]


def test_loss_mask_covers_completion_and_eos_only(tok, renderer):
    ex = encode_row(renderer, {"prompt": "Calculate 12 + 5.", "completion": "<answer>17</answer>"})
    prompt_len = len(renderer.prompt_ids("Calculate 12 + 5."))
    assert ex.labels[:prompt_len] == [IGNORE] * prompt_len
    completion = ex.labels[prompt_len:]
    assert tok.convert_ids_to_tokens(completion) == ["<answer>", "1", "7", "</answer>", "<|end|>"]
    assert ex.input_ids[prompt_len:] == completion


def test_truncation_keeps_the_prompt(renderer):
    ex = encode_row(renderer, {"prompt": "Calculate 12 + 5.", "completion": "<answer>17</answer>"}, max_len=12)
    assert len(ex.input_ids) == 12 and ex.labels[-1] != IGNORE
    with pytest.raises(ValueError, match="leaves no room"):
        encode_row(renderer, {"prompt": "Calculate 12 + 5.", "completion": "1"}, max_len=3)


def test_collate_right_pads_with_ignored_labels(tok, renderer):
    a = encode_row(renderer, {"prompt": "Calculate 1 + 2.", "completion": "3"})
    b = encode_row(renderer, {"prompt": "Calculate 11 + 12.", "completion": "23"})
    ids, mask, labels = collate([a, b], tok.pad_token_id)
    assert ids.shape == mask.shape == labels.shape == (2, len(b.input_ids))
    n = len(a.input_ids)
    assert mask[0].tolist() == [1] * n + [0] * (ids.shape[1] - n)
    assert (ids[0, n:] == tok.pad_token_id).all() and (labels[0, n:] == IGNORE).all()
    assert labels.dtype == torch.long


def test_answer_text_reads_the_tags_like_the_samplers_verifier():
    from services.sft.evaluate import answer_text

    assert answer_text("<answer>17</answer>") == "17"
    assert answer_text("<answer>1</answer> then <answer> 23 </answer>") == "23"
    assert answer_text("17") is None  # untagged answers score 0 in the pipeline too
