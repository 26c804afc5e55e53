"""A LoRA run's versions and checkpoints are adapters: `resolve_model` names the model they go on."""

import json

import pytest

from shared.configio import ConfigError
from shared.run_folder import resolve_model


def _adapter(folder, base=None):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    return folder


def test_adapter_versions_resolve_with_their_base(tmp_path):
    run = tmp_path / "run"
    _adapter(run / "weights" / "v4", base="/elsewhere")
    (run / "config.yaml").write_text("model: {path: /models/start, lora: {r: 8}}\n")
    ref = resolve_model(run / "weights" / "v4")
    assert (ref.version, ref.label, str(ref.base)) == (4, "v4", "/models/start")  # the run config wins
    (run / "checkpoints" / "step-6").mkdir(parents=True)
    _adapter(run / "checkpoints" / "step-6" / "model")
    (run / "checkpoints" / "step-6" / "state.json").write_text(json.dumps({"policy_version": 6}))
    assert str(resolve_model(run / "checkpoints" / "step-6").base) == "/models/start"
    loose = resolve_model(_adapter(tmp_path / "loose", base="/hub/base"))
    assert (loose.run_dir, str(loose.base)) == (None, "/hub/base")  # no run: what peft recorded
    with pytest.raises(ConfigError, match="base model is unknown"):
        resolve_model(_adapter(tmp_path / "orphan"))


def test_whole_models_have_no_base(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve_model(tmp_path / "m").base is None
