"""The sampler's SamplingSettings carry the stop ids of its model and prompt format: the chat
template's turn end when prompts go through it, the model's eos ids either way."""

from transformers import AutoTokenizer

from services.sampler.loop import SamplerLoop
from services.sampler.tasks import PromptRenderer
from shared.config import RunConfig
from shared.stop_tokens import StopTokens
from tests.helpers.tiny_model import build_tiny_model
from tests.helpers.tiny_qwen2 import ENDOFTEXT, IM_END, build_tiny_qwen2


def settings_for(model_dir):
    cfg = RunConfig.model_validate({"model": {"path": str(model_dir)}, "sampler": {"temperature": 0.7}})
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(model_dir))
    return SamplerLoop.sampling_settings(cfg, renderer), renderer.tokenizer


def test_chat_template_prompts_stop_at_the_turn_end(tmp_path):
    settings, tok = settings_for(build_tiny_qwen2(tmp_path / "qwen2"))
    eos, im_end = tok.convert_tokens_to_ids(ENDOFTEXT), tok.convert_tokens_to_ids(IM_END)
    assert settings.stop == StopTokens(eos=(eos,), turn_end=(im_end,)) and settings.temperature == 0.7


def test_raw_prompts_stop_at_the_eos_only(tmp_path):
    settings, tok = settings_for(build_tiny_model(tmp_path / "llama"))  # no chat template
    assert settings.stop == StopTokens(eos=(tok.eos_token_id,))
