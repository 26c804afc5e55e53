"""docs/deploy.md's sizing table, computed by `shared.sizing` for the Qwen2.5 0.5B/1.5B/7B shapes.

The run is configs/paper-qwen2.5-0.5b-math.yaml (the paper's micro-batches, gradient
checkpointing, chunked log-probs, bf16 autocast, 64 prompts x 4 completions of up to
1024 + 2048 tokens) with only the model's shape changed; one row per learner layout. The same
numbers, part by part: `dashrl config configs/paper-qwen2.5-0.5b-math.yaml --estimate
--model-shape qwen2.5-1.5b [--sharding fsdp --world-size 4] [--lora-rank 16]`.

    .venv/bin/python scripts/sizing_table.py              # print the table
    .venv/bin/python scripts/sizing_table.py --write-doc  # replace it in docs/deploy.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.config_cmd import GPU_SIZES_GB  # noqa: E402
from shared.configio import load_config  # noqa: E402
from shared.model_shapes import PRESETS  # noqa: E402
from shared.sizing import GiB, estimate_run  # noqa: E402

CONFIG = ROOT / "configs/paper-qwen2.5-0.5b-math.yaml"
BEGIN, END = "<!-- sizing table: scripts/sizing_table.py --write-doc -->", "<!-- end of sizing table -->"
LAYOUTS = [("1 GPU (DDP: a full copy per rank)", {"world_size": 1, "sharding": "ddp"}),
           ("FSDP2 over 2 GPUs, per GPU", {"world_size": 2, "sharding": "fsdp"}),
           ("FSDP2 over 4 GPUs, per GPU", {"world_size": 4, "sharding": "fsdp"}),
           ("FSDP2 over 8 GPUs, per GPU", {"world_size": 8, "sharding": "fsdp"}),
           ("LoRA rank 16, 1 GPU", {"world_size": 1, "sharding": "ddp", "lora_rank": 16})]


def smallest_gpu(gib: float) -> str:
    fit = [g for g in GPU_SIZES_GB if g * 1e9 / GiB >= gib]
    return f"{fit[0]} GB" if fit else f"none (> {GPU_SIZES_GB[-1]} GB)"


def table() -> str:
    cfg = load_config(CONFIG, [])
    lines = ["| model | params | learner layout | learner GiB per GPU | smallest GPU | sampler GiB (weights + KV) "
             "| sampler GPU (at 0.85) |", "|---|---|---|---:|---|---:|---|"]
    for name in ("qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b"):
        shape = PRESETS[name]
        for i, (layout, kw) in enumerate(LAYOUTS):
            run = estimate_run(cfg, shape, name, cuda=True, **kw)
            learner = run.learner.total / GiB
            sampler = run.sampler.total / GiB
            need = sampler / (run.gpu_memory_utilization or 1.0)
            first = i == 0
            lines.append(f"| {name if first else ''} | {f'{shape.params / 1e9:.2f} B' if first else ''} | {layout} "
                         f"| {learner:.1f} | {smallest_gpu(learner)} | {f'{sampler:.1f}' if first else ''} "
                         f"| {smallest_gpu(need) if first else ''} |")
    return "\n".join(lines) + "\n"


def write_doc(doc: Path = ROOT / "docs/deploy.md") -> None:
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table() + text[end:])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-doc", action="store_true")
    if ap.parse_args().write_doc:
        write_doc()
    else:
        print(table(), end="")
