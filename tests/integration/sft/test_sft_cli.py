"""`dashrl sft` end to end through the real CLI: a tiny model folder (char tokenizer, no chat
template) learns a tiny JSONL task — its completion loss falls — and the saved folder loads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from services.sft.sft_data import collate, encode_row, read_rows
from shared.tasks import PromptRenderer
from tests.helpers.tiny_model import build_tiny_model


def completion_loss(folder: Path, data: Path) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids, mask, labels = collate([encode_row(PromptRenderer(tok), r) for r in read_rows(data)], tok.pad_token_id)
    with torch.no_grad():
        return float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)


def test_sft_cli_lowers_completion_loss(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    data = tmp_path / "train.jsonl"
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(8) for b in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sft"
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "sft", "--model", str(base), "--data", str(data), "--out", str(out),
         "--max-steps", "60", "--lr", "3e-3", "--batch-size", "16", "--seed", "1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sft step 60/60" in proc.stdout
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    before, after = completion_loss(base, data), completion_loss(out, data)
    assert after < 0.6 * before, (before, after)


def test_sft_cli_bad_data_is_an_error(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "x"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "sft", "--model", str(base), "--data", str(data), "--out",
         str(tmp_path / "o")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "bad.jsonl:1: missing 'completion'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_sft_cli_takes_data_or_a_run_config_not_both(tmp_path):
    base = build_tiny_model(tmp_path / "base")
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "sft", "--model", str(base), "--data", "x.jsonl", "--config",
         "configs/demo-cpu.yaml", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "give --data FILE or --config RUN.yaml" in proc.stderr
    assert not (tmp_path / "o").exists()
