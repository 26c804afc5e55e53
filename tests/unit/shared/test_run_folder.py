"""Where a run's folder is; what a MODEL argument names inside a run folder (final/, weights/vN,
checkpoints/step-N, the run itself) and the one-line errors for what is not a model."""

import json

import pytest

from shared.config import RunConfig
from shared.configio import ConfigError
from shared.run_folder import resolve_model, run_dir, version_folder


def model(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_run_dir_is_output_dir_slash_run_id():
    cfg = RunConfig(output_dir="out/runs", run_id="r1")
    assert run_dir(cfg).as_posix() == "out/runs/r1"
    assert run_dir(cfg, "shard-test").as_posix() == "out/runs/shard-test"  # another id, same layout
    with pytest.raises(ConfigError, match=r"^run_id: required \(set it with --set run_id=\.\.\.\)$"):
        run_dir(RunConfig(output_dir="out/runs"))


@pytest.fixture
def run(tmp_path):
    r = tmp_path / "runs" / "r1"
    model(r / "final")
    model(r / "weights" / "v7")
    model(r / "checkpoints" / "step-5" / "model")
    (r / "checkpoints" / "step-5" / "state.json").write_text(json.dumps({"step": 5, "policy_version": 5}))
    (r / "config.yaml").write_text("run_id: r1\n")
    (r / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "policy_version": s}) + "\n" for s in (1, 8)))
    return r


def test_places_in_a_run(run):
    assert resolve_model(run) == resolve_model(run / "final")
    ref = resolve_model(run)
    assert (ref.path, ref.run_dir, ref.version, ref.label) == (run / "final", run, 8, "final")
    ref = resolve_model(run / "weights" / "v7")
    assert (ref.path, ref.run_dir, ref.version, ref.label) == (run / "weights" / "v7", run, 7, "v7")
    ref = resolve_model(run / "checkpoints" / "step-5")
    assert (ref.path, ref.run_dir, ref.version) == (run / "checkpoints" / "step-5" / "model", run, 5)
    assert version_folder(run, 7) == run / "weights" / "v7"
    assert version_folder(run, 5) == run / "checkpoints" / "step-5" / "model"


def test_plain_folder_and_errors(run, tmp_path):
    ref = resolve_model(model(tmp_path / "base"))
    assert (ref.run_dir, ref.version, ref.label) == (None, 0, "base")
    with pytest.raises(ConfigError, match="no such model folder or run"):
        resolve_model(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"not a Hugging Face model folder \(no config.json\)"):
        resolve_model(run / "weights")
    with pytest.raises(ConfigError, match=r"version 3 is neither in weights/ \(has \[7\]\)"):
        version_folder(run, 3)
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.yaml").write_text("{}")
    with pytest.raises(ConfigError, match="run has no final/ model"):
        resolve_model(tmp_path / "unfinished")
