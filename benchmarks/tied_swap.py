"""Weight-swap time of the vLLM backend for tied-embedding models: in place (reload_weights +
re-packing the tied output layer, what `VllmBackend.load_weights` does) against rebuilding the
engine from the new folder (what it did before). Random tied Qwen2 models built here, no
downloads: the tiny test model and, with --large, Qwen2.5-0.5B's widths (hidden 896, 14 heads
of 64, 2 KV heads, MLP 4864, vocabulary 151936) with 2 layers instead of 24. Each variant is
timed `--rounds` times, alternating between two versions; medians are printed as JSON.

    .venv/bin/python -m benchmarks.tied_swap [--large] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


LARGE = dict(hidden_size=896, num_layers=2, num_heads=14, num_kv_heads=2, intermediate_size=4864, vocab_size=151936)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, shape: dict, rounds: int, tmp: Path) -> dict:
    from services.sampler.backends import SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend
    from tests.helpers.tiny_qwen2 import build_tiny_qwen2

    versions = [build_tiny_qwen2(tmp / f"{name}-v{i}", seed=i, **shape) for i in range(2)]
    engine = dict(dtype="float32", seed=0, max_model_len=256)
    backend = VllmBackend(versions[0], **engine)
    probe = SamplingSettings(n=1, temperature=0.0, max_new_tokens=4)
    try:
        in_place, rebuild = [], []
        for r in range(rounds):
            in_place.append(timed(lambda: backend.load_weights(versions[(r + 1) % 2])))
            backend.generate([[1, 20, 21]], probe)
        for r in range(rounds):
            def rebuild_engine(path=versions[(r + 1) % 2]):
                nonlocal backend
                backend.close()
                backend = VllmBackend(path, **engine)  # a fresh engine
            rebuild.append(timed(rebuild_engine))
            backend.generate([[1, 20, 21]], probe)
    finally:
        backend.close()
    size_mb = sum(p.stat().st_size for p in versions[0].glob("*.safetensors")) / 2**20
    return {"model": name, "safetensors_mb": round(size_mb, 1), "rounds": rounds,
            "in_place_s": round(statistics.median(in_place), 3), "rebuild_s": round(statistics.median(rebuild), 2),
            "in_place_all": [round(x, 3) for x in in_place], "rebuild_all": [round(x, 2) for x in rebuild]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also the Qwen2.5-0.5B-wide 2-layer model")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shapes = {"tiny-qwen2": {}, **({"qwen2.5-0.5b-wide-2-layer": LARGE} if args.large else {})}
        for name, shape in shapes.items():
            print(json.dumps(measure(name, shape, args.rounds, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
