"""Measured CPU peak of learner training steps next to `shared.sizing`'s estimate of it.

Builds a random Llama of a given shape (a `shared.model_shapes` preset, or the tests' tiny
Llama), runs `--steps` real learner steps (services.learner.trainer: micro-batches, chunked
log-probs, the clipped loss, backward, AdamW) on synthetic rows of `--prompt` + `--completion`
tokens, and prints one JSON line: the peak resident anonymous memory over the one before the model
was built (polled from a thread; glibc's mmap threshold fixed at 64 KiB, so freed tensors leave
it), the growth of max RSS beside it, the estimate for the same setup
(`cuda=False`), and their ratio. One process per measurement (the peak is per process).

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.learner_memory --shape tiny-llama --rows 8
    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.learner_memory --shape smollm2-135m --rows 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

from shared.model_shapes import PRESETS, ModelShape
from shared.sizing import LearnerSetup, estimate_learner

TINY_LLAMA = ModelShape(vocab=100, hidden=64, layers=2, heads=2, kv_heads=2, head_dim=32, intermediate=128, tied=False)
"""tests/helpers/tiny_model.py's defaults (its char vocabulary is 100 ids)."""


def shape_named(name: str) -> ModelShape:
    return TINY_LLAMA if name == "tiny-llama" else PRESETS[name]


def _anon_now() -> int:
    """Resident anonymous memory (resident minus file-backed and shared pages), in bytes."""
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")


class AnonPeak:
    """The largest resident anonymous memory seen, polled every `every_s` from a thread (torch
    releases the GIL in its kernels). Unlike max RSS it does not move when the kernel drops or
    faults in pages of shared libraries, which a loaded box does between two readings."""

    def __init__(self, every_s: float = 0.0005) -> None:
        import threading

        self.peak, self.every_s, self._stop = _anon_now(), every_s, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, _anon_now())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anon_now())
        return self.peak


def build_model(shape: ModelShape, max_len: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim, tie_word_embeddings=shape.tied, attention_bias=shape.qkv_bias,
        max_position_embeddings=max_len, attn_implementation="sdpa")).train()


def _warm_up(a: argparse.Namespace) -> None:
    """One forward/backward of a throwaway 2-layer model of the same lengths."""
    import torch

    warm = build_model(ModelShape(100, 32, 2, 2, 2, 16, 64, tied=False), a.prompt + a.completion)
    ids = torch.randint(4, 100, (1, a.prompt + a.completion))
    warm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
    del warm, ids


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def measure(shape: ModelShape, a: argparse.Namespace) -> tuple[int, int]:
    """(peak anonymous memory over the pre-model one, max RSS growth), in bytes, across `a.steps`
    learner steps. The max RSS growth is 0 when the warm-up's peak was higher."""
    import numpy as np
    import torch

    from services.learner.microbatches import TrainSample
    from services.learner.model import placement
    from services.learner.trainer import Trainer
    from shared.config import RunConfig

    torch.manual_seed(0)
    _warm_up(a)  # imports and first-use allocations (kernels, thread pools) before the baseline
    base, rss_base = _anon_now(), _max_rss()
    peak = AnonPeak()
    model = build_model(shape, a.prompt + a.completion)
    with tempfile.TemporaryDirectory() as d:
        cfg = RunConfig.model_validate({
            "model": {"path": d}, "sampler": {"temperature": 1.0, "max_new_tokens": a.completion,
                                              "max_prompt_tokens": a.prompt},
            "learner": {"logits_chunk_tokens": a.chunk, "share_prompts": False, "precision": "fp32",
                        "device": "cpu", "micro_batch_size": a.rows, "train_batch_size": a.rows,
                        "micro_batch_tokens": a.rows * (a.prompt + a.completion),
                        "gradient_checkpointing": a.checkpointing}})
    if a.checkpointing:
        model.gradient_checkpointing_enable()
    trainer = Trainer(model, cfg, placement(cfg.model, cfg.learner))
    rng = np.random.default_rng(0)
    for step in range(a.steps):
        samples = [TrainSample(f"b{i}", rng.integers(4, shape.vocab, a.prompt).astype(np.int32),
                               rng.integers(4, shape.vocab, a.completion).astype(np.int32),
                               np.full(a.completion, -2.0, np.float32), 1.0 if i % 2 else -1.0)
                   for i in range(a.rows)]
        trainer.train_step(samples, step)
    return peak.stop() - base, _max_rss() - rss_base


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="tiny-llama", choices=["tiny-llama", *PRESETS])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--completion", type=int, default=768)
    ap.add_argument("--chunk", type=int, default=1024, help="learner.logits_chunk_tokens")
    ap.add_argument("--checkpointing", action="store_true", help="learner.gradient_checkpointing")
    ap.add_argument("--steps", type=int, default=2, help="AdamW's moments exist from the first step's end")
    a = ap.parse_args(argv)
    shape = shape_named(a.shape)
    setup = LearnerSetup(precision="fp32", rows=a.rows, row_tokens=a.prompt + a.completion,
                         completion_tokens=a.completion, logits_chunk=a.chunk,
                         gradient_checkpointing=a.checkpointing, cuda=False)
    estimate = estimate_learner(shape, setup)
    measured, rss_growth = measure(shape, a)
    out = {"shape": a.shape, "params": shape.params, "rows": a.rows, "prompt": a.prompt, "completion": a.completion,
           "chunk": a.chunk, "checkpointing": a.checkpointing, "measured_bytes": measured, "max_rss_growth_bytes": rss_growth,
           "estimate_bytes": estimate.total, "ratio": estimate.total / measured,
           "parts": {p.name: p.bytes for p in estimate.parts}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # glibc's default threshold grows to 32 MB, after which freed tensors stay in the heap
        # and the process's memory counts them again (1.37x the live peak here): a fixed one returns them
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.learner_memory", *sys.argv[1:]],
                  {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    main()
