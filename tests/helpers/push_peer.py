"""A sampler-side peer of the collective push, run as its own process by the push tests:
`python -m tests.helpers.push_peer PORT MODEL_DIR FALLBACK_DIR OUT_DIR [--stall]`.

Takes a seat in generation 0 (world size 2), reads the WeightsPushed announcement the test
(the learner, rank 0) puts in the rendezvous store under `announce`, receives it into a
transformers backend (`apply_pushed`), or on failure loads FALLBACK_DIR as the store path
would; then writes OUT_DIR/{model.safetensors, result.json} (greedy log-probs, fallbacks).
`--stall`: take the seat, then never receive (a stalled sampler).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from safetensors.torch import save_file

from services.sampler.backends.base import SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.pushed_weights import apply_pushed, join_push_group
from shared.metrics import weight_push_metrics
from shared.protocol import WeightsPushed, decode
from shared.weight_push import open_store
from shared.weights_config import BroadcastTransport

PROMPT = [[5, 6, 7, 8, 9]]


def main(port: int, model: Path, fallback: Path, out: Path, stall: bool) -> None:
    cfg = BroadcastTransport(port=port, samplers=1, timeout_s=3.0)
    metrics = weight_push_metrics(CollectorRegistry())
    backend = None if stall else HFBackend(model, dtype="float32")
    group = join_push_group(cfg, 0, metrics)
    if stall:
        time.sleep(3600)
    store = open_store(cfg.host, port, is_learner=False, timeout=timedelta(seconds=30))
    msg = decode(store.get("announce"), expect=WeightsPushed)
    if not apply_pushed(group, backend, msg, metrics, 1 << 12):
        backend.load_weights(fallback)  # the store path for the same version
    lp = backend.generate(PROMPT, SamplingSettings(temperature=0, max_new_tokens=8))[0][0].logprobs
    save_file({n: p.detach().contiguous() for n, p in backend.model.named_parameters()}, str(out / "model.safetensors"))
    fallbacks = {s.labels["reason"]: s.value for m in metrics.fallbacks.collect() for s in m.samples
                 if s.name.endswith("_total")}
    (out / "result.json").write_text(json.dumps({"logprobs": lp.tolist(), "fallbacks": fallbacks}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), Path(a[1]), Path(a[2]), Path(a[3]), "--stall" in a)
