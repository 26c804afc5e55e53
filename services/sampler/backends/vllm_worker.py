"""A vLLM worker extension (`worker_extension_cls`): the RPC that makes an in-place reload of a
tied-embedding model correct on vLLM's CPU backend.

On CPU, every linear-like layer's post-load processing hands its weight to a packed GEMM kernel
kept on the layer (`layer.cpu_linear`, built by `dispatch_cpu_unquantized_gemm` in vLLM's
`model_executor/layers/utils.py`: a oneDNN handle or an sgl-kernel packed copy). A tied `lm_head`
shares `embed_tokens.weight` but keeps a packed copy of its own, and computes the logits through
it. `reload_weights` reloads layer by layer and re-processes only the layers whose weights it
loaded: `embed_tokens` gets the new values, the tied `lm_head` (no `lm_head.weight` in a tied
checkpoint) keeps its old packed copy, so the engine samples from new hidden states against an
old output layer. Re-running the dispatch on the output layers after the reload packs the new
shared weight again. On GPU the output layer reads `layer.weight` directly and nothing is stale.

vLLM resolves this class by its dotted name inside the worker (in this process when
VLLM_ENABLE_V1_MULTIPROCESSING=0, in the engine process otherwise) and mixes it into the
worker, so `llm.collective_rpc("repack_output_layers")` reaches it either way.
"""

from __future__ import annotations

QUALNAME = "services.sampler.backends.vllm_worker.TiedReloadExtension"


class TiedReloadExtension:
    """Mixed into vLLM's worker class; `self` is the worker."""

    def repack_output_layers(self) -> int:
        """Re-pack every output layer's CPU GEMM from its current weight; returns how many were
        re-packed (0 off CPU, where there is nothing to refresh)."""
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return 0
        heads = [m for m in self.get_model().modules() if isinstance(m, ParallelLMHead) and hasattr(m, "cpu_linear")]
        for head in heads:
            # remove_weight=False as in the embedding method's own post-load step: the tensor is
            # shared with embed_tokens, which still needs it for the lookup.
            dispatch_cpu_unquantized_gemm(head, remove_weight=False)
        return len(heads)
