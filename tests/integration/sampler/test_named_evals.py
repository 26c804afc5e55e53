"""Two named evals in a short real sampler run (transformers backend, tiny model, private Redis):
both are scored at every version, written to eval.jsonl under their names, carried by the
heartbeat, and exported on the sampler's /metrics with the `eval` label."""

import json
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.sampler.parts import build_loop
from shared.metrics import sampler_metrics, serve
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import publish_perturbed, sampler_config, wait_prefetched

EVALS = ("task.evals=[{name: held, size: 3},"
         " {name: arith, source: {kind: reasoning_gym, name: basic_arithmetic}, size: 3,"
         "  greedy: false, samples: 2, pass_at_k: [1, 2]}]")


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_two_named_evals_reach_eval_jsonl_heartbeat_and_prometheus(redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="evals1", extra=[EVALS])
    metrics, reg = sampler_metrics()
    port = serve(reg, 0, addr="127.0.0.1")
    loop = build_loop(cfg, redis_client, cfg.run_id, metrics, tmp_path / "local")
    try:
        loop.run(lambda: False, max_calls=1)  # version 0: both evals
        publish_perturbed(redis_client, cfg, model_dir, version=1)
        wait_prefetched(loop.follower, 1)
        loop.run(lambda: False, max_calls=2)  # version 1: both again
        loop.finisher.flush()
        report = loop.report()
    finally:
        loop.close()
    rows = [json.loads(line) for line in (Path(cfg.output_dir) / "evals1" / "eval.jsonl").read_text().splitlines()]
    assert [(r["name"], r["version"]) for r in rows] == [("held", 0), ("arith", 0), ("held", 1), ("arith", 1)]
    for r in rows:
        assert r["num_problems"] == 3
        if r["name"] == "held":  # greedy and one sample, as the default eval
            assert 0 <= r["greedy_accuracy"] <= 1 and r["samples"] == 1 and set(r["pass_at_k"]) == {"1"}
        else:  # pass@k over 2 samples, no greedy
            assert "greedy_accuracy" not in r and r["samples"] == 2 and set(r["pass_at_k"]) == {"1", "2"}
            assert r["pass_at_k"]["1"] <= r["pass_at_k"]["2"] <= 1
    assert report.eval_version == 1 and report.eval_accuracy == rows[2]["greedy_accuracy"]  # the headline
    assert report.evals == {"held": rows[2]["greedy_accuracy"], "arith": rows[3]["sampled_accuracy"]}

    got = scrape(port)
    labels = lambda **kw: frozenset(kw.items())  # noqa: E731
    assert got[("dashrl_eval_accuracy", labels(eval="held", mode="greedy"))] == rows[2]["greedy_accuracy"]
    assert got[("dashrl_eval_accuracy", labels(eval="held", mode="sampled"))] == rows[2]["sampled_accuracy"]
    assert got[("dashrl_eval_accuracy", labels(eval="arith", mode="sampled"))] == rows[3]["sampled_accuracy"]
    assert ("dashrl_eval_accuracy", labels(eval="arith", mode="greedy")) not in got  # not computed
    assert got[("dashrl_sampler_eval_pass_at_k", labels(eval="arith", k="2"))] == rows[3]["pass_at_k"]["2"]
    assert {dict(k)["eval"] for name, k in got if name == "dashrl_eval_accuracy"} == {"held", "arith"}
