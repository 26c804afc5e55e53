"""LoRA against full fine-tuning on the same model: learner step time, trainable parameters,
the size and publish time of one weight version, and the sampler's swap time for each kind of
version (transformers backend: whole-model copy vs merging the adapter; vLLM: `reload_weights`
vs adding a LoRA adapter vs merging it into a whole folder and reloading that, and one generation
call on the base, under the LoRA adapter and on the merged weights).

Random models built here, no downloads: the demo policy's widths (hidden 128, 4 layers, 4 heads
of 32, MLP 512, vocabulary 384) and SmolLM2-135M's (hidden 576, 30 layers, 9 heads of 64, 3 KV
heads, MLP 1536, vocabulary 49152, tied embeddings). The step is `Trainer.train_step` (the
learner's own: packing, clipped policy loss, grad clipping, AdamW) on synthetic samples; LoRA is
`services.learner.lora.apply_lora` with the config's defaults (r 16, alpha 32, every attention
and MLP projection). The box is shared: wall and process CPU seconds are both reported, and the
load average is recorded beside them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lora.py [--shapes demo smollm2] [--vllm] [--write-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHAPES = {
    "demo": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, head_dim=32,
                 intermediate_size=512, vocab_size=384, tie_word_embeddings=False),
    "smollm2": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                    intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
}
SAMPLES, PROMPT, COMPLETION = 8, 32, 32  # default samples per step (--samples), their lengths


def build(folder: Path, shape: dict) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.helpers.tiny_model import build_tokenizer

    torch.manual_seed(0)
    cfg = LlamaConfig(max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2, **shape)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


def samples(vocab: int, seed: int, n: int):
    from services.learner.microbatches import TrainSample

    rng = np.random.default_rng(seed)
    return [TrainSample(f"b{i}", rng.integers(4, min(vocab, 100), PROMPT).astype(np.int32),
                        rng.integers(4, min(vocab, 100), COMPLETION).astype(np.int32),
                        np.full(COMPLETION, -4.6, np.float32), float(rng.choice([-1.0, 1.0]))) for i in range(n)]


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def learner_side(model_dir: Path, lora: dict | None, steps: int, store_root: Path, vocab: int, n: int) -> dict:
    from transformers import AutoModelForCausalLM

    from services.learner.lora import apply_lora
    from services.learner.model import placement
    from services.learner.trainer import Trainer
    from shared.config import RunConfig
    from shared.weights import make_store

    cfg = RunConfig.model_validate({"model": {"path": str(model_dir), "lora": lora}, "learner": {
        "lr": 1e-4, "train_batch_size": n, "micro_batch_size": n, "micro_batch_tokens": 4096}})
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()
    if cfg.model.lora:
        model = apply_lora(model, cfg.model.lora)
    trainer = Trainer(model, cfg, placement(cfg.model, cfg.learner))
    times = [timed(lambda s=s: trainer.train_step(samples(vocab, s, n), s + 1)) for s in range(steps)][1:]
    store = make_store("fs", run_id="bench", root=store_root, r=None)
    box = {}
    publish = timed(lambda: box.update(msg=store.publish(model, None, 1, 1)))
    adam = sum(t.numel() * t.element_size() for st in trainer.optimizer.state.values() for t in st.values()
               if torch.is_tensor(t) and t.dim() > 0)
    return {"trainable": sum(p.numel() for p in trainer.params), "total": sum(p.numel() for p in model.parameters()),
            "step_wall_s": statistics.median(t[0] for t in times), "step_cpu_s": statistics.median(t[1] for t in times),
            "adam_state_mb": adam / 2**20, "version_mb": box["msg"].byte_size / 2**20, "publish_s": publish[0],
            "folder": box["msg"].location}


def hf_swap(model_dir: Path, full: str, adapter: str, rounds: int) -> dict:
    from services.sampler.backends.hf_backend import HFBackend

    backend = HFBackend(model_dir, dtype="float32")
    out = {"full": [], "adapter": []}
    for _ in range(rounds):  # alternating, the first adapter load includes keeping the base copy
        out["full"].append(timed(lambda: backend.load_weights(Path(full)))[0])
        out["adapter"].append(timed(lambda: backend.load_weights(Path(adapter)))[0])
    return {f"hf_{k}_swap_s": statistics.median(v) for k, v in out.items()}


def vllm_swap(model_dir: Path, full: str, adapter: str, rounds: int) -> dict:
    from services.sampler.backends import SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend

    backend = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=256, lora_rank=16)
    settings = SamplingSettings(n=4, temperature=1.0, max_new_tokens=32)
    prompts = [list(range(5, 5 + PROMPT))] * 4
    gen = lambda: backend.generate(prompts, settings)  # noqa: E731
    try:
        gen()  # warm-up
        base_gen = [timed(gen)[0] for _ in range(rounds)]
        swaps = [timed(lambda: backend.load_weights(Path(adapter)))[0] for _ in range(rounds)]
        lora_gen = [timed(gen)[0] for _ in range(rounds)]
        backend.lora = None  # back to the plain engine, then a whole-model reload
        reloads = [timed(lambda: backend.load_weights(Path(full)))[0] for _ in range(rounds)]
    finally:
        backend.close()
    merging = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=256, lora_rank=16, lora_serving="merge")
    try:
        merges = [timed(lambda: merging.load_weights(Path(adapter)))[0] for _ in range(rounds)]
        gen = lambda: merging.generate(prompts, settings)  # noqa: E731
        gen()  # warm-up
        merged_gen = [timed(gen)[0] for _ in range(rounds)]
    finally:
        merging.close()
    med = statistics.median
    return {"vllm_reload_s": med(reloads), "vllm_add_lora_s": med(swaps), "vllm_gen_base_s": med(base_gen),
            "vllm_gen_lora_s": med(lora_gen), "vllm_merge_s": med(merges), "vllm_gen_merged_s": med(merged_gen)}


def measure(name: str, steps: int, rounds: int, use_vllm: bool, tmp: Path, n: int) -> dict:
    shape = SHAPES[name]
    model_dir = build(tmp / name, shape)
    full = learner_side(model_dir, None, steps, tmp / f"{name}-wf", shape["vocab_size"], n)
    lora = learner_side(model_dir, {}, steps, tmp / f"{name}-wl", shape["vocab_size"], n)
    row = {"shape": name, "samples": n, "full": full, "lora": lora,
           **hf_swap(model_dir, full["folder"], lora["folder"], rounds)}
    if use_vllm:
        row.update(vllm_swap(model_dir, full["folder"], lora["folder"], rounds))
    return row


def write_doc(rows: list[dict], cmd: str, load: tuple[float, float], threads: int, when: str | None = None) -> None:
    from benchmarks.doc_section import replace_section

    when = when or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "## LoRA vs full fine-tuning", "",
        f"`benchmarks/lora.py` ({when}, {platform.machine()} CPU, "
        f"{threads} torch thread(s), {os.cpu_count()} cores shared with other work: load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end, so wall times are loose; process CPU seconds "
        "are the steadier figure). Random Llama models at the demo policy's widths and at SmolLM2-135M's; "
        f"a step is `Trainer.train_step` on {rows[0].get('samples', SAMPLES)} samples of {PROMPT} + {COMPLETION} "
        "tokens (one micro-batch), "
        "median of the steps after the first; LoRA: r 16, alpha 32, all 7 projections. A version is what the "
        "fs weight store writes (float32: the CPU's served dtype).", "",
        "| model | mode | trainable params | AdamW state | step (wall) | step (CPU) | version size | publish |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for mode in ("full", "lora"):
            m = r[mode]
            lines.append(f"| {r['shape']} | {mode} | {m['trainable'] / 1e6:.2f}M of {m['total'] / 1e6:.2f}M | "
                         f"{m['adam_state_mb']:.1f} MiB | {m['step_wall_s']:.3f} s | {m['step_cpu_s']:.3f} s | "
                         f"{m['version_mb']:.2f} MiB | {m['publish_s']:.3f} s |")
    lines += ["", "Sampler swap time (median; a swap is `load_weights` of a fetched version):", "",
              "| model | transformers: whole model | transformers: merge adapter | vLLM: reload_weights | "
              "vLLM: add LoRA adapter | vLLM: merge + reload | vLLM call, base | vLLM call, LoRA adapter | "
              "vLLM call, merged |", "|---|---|---|---|---|---|---|---|---|"]
    f = lambda r, k: f"{r[k]:.3f} s" if k in r else "-"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['shape']} | {f(r, 'hf_full_swap_s')} | {f(r, 'hf_adapter_swap_s')} | "
                     f"{f(r, 'vllm_reload_s')} | {f(r, 'vllm_add_lora_s')} | {f(r, 'vllm_merge_s')} | "
                     f"{f(r, 'vllm_gen_base_s')} | {f(r, 'vllm_gen_lora_s')} | {f(r, 'vllm_gen_merged_s')} |")
    lines += ["", "The vLLM call: 4 prompts x 4 completions of 32 tokens at temperature 1. The transformers "
              "merge's median includes the first load, which also keeps the float32 copy of the base weights. "
              "Medians of few rounds on a shared box: at the demo's widths (calls under half a second) the "
              "differences are within the noise; the SmolLM2-width rows are the ones to read.", ""]
    for r in rows:
        full, lora = r["full"], r["lora"]
        text = (f"{r['shape']}: LoRA trains {100 * lora['trainable'] / full['total']:.1f}% of the parameters; "
                f"a step took {lora['step_cpu_s'] / full['step_cpu_s']:.2f}x the CPU time of full fine-tuning, "
                f"a version is {lora['version_mb'] / full['version_mb']:.3f}x the size")
        if "vllm_gen_lora_s" in r:
            text += (f"; vLLM: adding the adapter took {r['vllm_add_lora_s']:.2f} s (a whole-model reload "
                     f"{r['vllm_reload_s']:.2f} s), a call under it {r['vllm_gen_lora_s'] / r['vllm_gen_base_s']:.2f}x "
                     f"the base's; merged, a swap took {r['vllm_merge_s']:.2f} s and a call "
                     f"{r['vllm_gen_merged_s'] / r['vllm_gen_base_s']:.2f}x the base's")
        lines += [text + ".", ""]
    lines += [f"Raw: `{json.dumps([{k: v for k, v in r.items()} for r in rows], default=str)}`", "",
              f"    {cmd}", ""]
    replace_section(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", "## LoRA vs full fine-tuning",
                    "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["demo", "smollm2"], choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vllm", action="store_true", help="also time the vLLM backend's swaps and calls")
    ap.add_argument("--samples", type=int, default=SAMPLES, help="samples per learner step")
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args()
    start_load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes:
            row = measure(name, args.steps, args.rounds, args.vllm, Path(tmp), args.samples)
            for mode in ("full", "lora"):
                row[mode].pop("folder")
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.write_doc:
        cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lora.py " + " ".join(sys.argv[1:])
        write_doc(rows, cmd, (start_load, os.getloadavg()[0]), torch.get_num_threads())


if __name__ == "__main__":
    main()
