"""`dashrl export RUN [--version N] --out DIR [--dtype D]`: a run's weights as a plain Hugging
Face folder that any transformers-based tool loads: safetensors weights in the chosen dtype, the
tokenizer (with its chat template), a generation config whose `eos_token_id` lists the stop ids
dashrl sampled with (so plain `generate` stops where the run's completions stopped), and a model
card (README.md, `model_card.py`). A LoRA run's versions are adapters: the export merges the
chosen one into the run's starting model (`model.path`), so the folder is a whole model all the
same, and keeps the adapter itself in `adapter/` (for `PeftModel.from_pretrained(base, out/adapter)`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from shared.configio import ConfigError, load_config
from shared.run_folder import resolve_model, version_folder
from shared.weight_folder import is_adapter

log = logging.getLogger("dashrl.export")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (<output_dir>/<run_id>)")
    p.add_argument("--version", type=int, default=None,
                   help="policy version to export (weights/vN or the checkpoint holding it); default: final/")
    p.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="tensor dtype written (auto: as stored)")


def source_folder(run_dir: Path, version: int | None) -> tuple[Path, int, str]:
    """(model or adapter folder, policy version, label) of the weights to export."""
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
    if version is None:
        ref = resolve_model(run_dir)
        return ref.path, ref.version, "final/"
    path = version_folder(run_dir, version)
    return path, version, str(path.relative_to(run_dir))


def load_merged(src: Path, base: str, dtype: Any, trust: bool) -> tuple[Any, Path | None]:
    """(the whole model at `src`, or the adapter at `src` merged into `base`; the adapter folder
    to ship beside it: `src` itself, or a merged `final/`'s `adapter/`)."""
    from transformers import AutoModelForCausalLM

    if not is_adapter(src):
        model = AutoModelForCausalLM.from_pretrained(str(src), dtype=dtype, trust_remote_code=trust)
        return model, (src / "adapter" if is_adapter(src / "adapter") else None)
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, trust_remote_code=trust)
    return PeftModel.from_pretrained(model, str(src)).merge_and_unload(), src


def generation_config(model, tokenizer, stop_ids: tuple[int, ...]):
    """The folder's generation config, its `eos_token_id` widened to dashrl's stop ids."""
    from transformers import GenerationConfig

    gen = model.generation_config if model.generation_config is not None else GenerationConfig.from_model_config(
        model.config)
    if stop_ids:
        gen.eos_token_id = list(stop_ids) if len(stop_ids) > 1 else stop_ids[0]
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    return gen


def export(run_dir: Path, out: Path, version: int | None = None, dtype: str = "auto") -> Path:
    """Write the export of `run_dir` to `out`; returns `out`. Raises ConfigError."""
    import torch
    from transformers import AutoTokenizer

    from services.export.model_card import model_card
    from shared.stop_tokens import stop_tokens
    from shared.tasks import PromptRenderer

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out: {out} exists and is not empty")
    src, ver, label = source_folder(run_dir, version)
    cfg = load_config(str(run_dir / "config.yaml"))
    trust = cfg.model.trust_remote_code
    model, adapter = load_merged(src, cfg.model.path, "auto" if dtype == "auto" else getattr(torch, dtype), trust)
    tokenizer = AutoTokenizer.from_pretrained(str(src), trust_remote_code=trust)
    uses_template = PromptRenderer(tokenizer).uses_chat_template
    stop = stop_tokens(tokenizer, chat_template=uses_template, model_path=src).ids
    model.generation_config = generation_config(model, tokenizer, stop)
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if adapter is not None:  # a LoRA run: its adapter beside the merged weights
        (tmp / "adapter").mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy2(adapter / name, tmp / "adapter" / name)
    written = str(next(model.parameters()).dtype).removeprefix("torch.")
    (tmp / "README.md").write_text(model_card(run_dir, version=ver, source=label, dtype=written))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log.info("export: %s (version %d, %s) -> %s", label, ver, written, out)
    return out


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = export(Path(args.run), Path(args.out), args.version, args.dtype)
    print(out)
    return 0
