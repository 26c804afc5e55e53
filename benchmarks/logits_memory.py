"""Peak CPU memory of one learner forward+backward: full logits vs completion-only chunked log-probs.

A tiny random Llama (hidden 64, 2 layers) with the paper's vocabulary (151,936), so the output
layer dominates; micro-batches of B rows x 3072 tokens (1024 prompt + 2048 completion), sampler
temperature 1.0 with top-k 50. Each configuration runs in a fresh subprocess; its peak is
resource.getrusage's max RSS, minus the RSS just before the forward (model, optimizer-free).

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.logits_memory --rows 1 --chunk 0
    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.logits_memory --rows 4 --chunk 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--completion", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=1024, help="learner.logits_chunk_tokens (0: full logits)")
    ap.add_argument("--vocab", type=int, default=151_936)
    a = ap.parse_args()

    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from services.learner.microbatches import TrainSample, collate
    from services.learner.model import placement
    from services.learner.trainer import Trainer
    from shared.algo.loss import BatchTotals
    from shared.config import RunConfig

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=a.vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=a.prompt + a.completion,
        attn_implementation="sdpa")).train()
    with tempfile.TemporaryDirectory() as d:
        cfg = RunConfig.model_validate({
            "model": {"path": d}, "sampler": {"temperature": 1.0, "top_k": 50, "max_new_tokens": a.completion},
            "learner": {"logits_chunk_tokens": a.chunk, "share_prompts": False, "precision": "fp32",
                        "micro_batch_size": a.rows, "train_batch_size": a.rows}})
    tr = Trainer(model, cfg, placement(cfg.model, cfg.learner))
    rng = np.random.default_rng(0)
    samples = [TrainSample(f"b{i}", rng.integers(4, a.vocab, a.prompt).astype(np.int32),
                           rng.integers(4, a.vocab, a.completion).astype(np.int32),
                           np.full(a.completion, -3.0, np.float32), float(rng.normal())) for i in range(a.rows)]
    mb = collate(samples)
    totals = BatchTotals.of([a.completion] * a.rows, max_len_norm=a.completion)
    base = _rss_gb()
    t0 = time.perf_counter()
    tr._forward_backward(mb, totals)
    seconds = time.perf_counter() - t0
    print(json.dumps({"rows": a.rows, "tokens": a.rows * (a.prompt + a.completion), "chunk": a.chunk,
                      "base_rss_gb": round(base, 3), "peak_rss_gb": round(_rss_gb(), 3),
                      "peak_over_base_gb": round(_rss_gb() - base, 3), "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
