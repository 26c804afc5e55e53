"""The transformers `generate` backend: the fallback when vLLM is absent, and the fast one for tests.

Log-probs come from the processed scores of each decoding step (`output_scores=True`: the
logits after temperature, top-k and top-p, the distribution the token was drawn from), as vLLM's
`processed_logprobs`; a greedy call's scores are the raw logits.
Weights are swapped in place from a folder's safetensors files or from pushed tensors
(`load_tensors`, the collective push; no new model object); a LoRA
version (an adapter folder) is merged into the base weights in place (`lora_adapter`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from services.sampler.backends.base import Completion, GenerationBackend, IncompatibleWeights, SamplingSettings
from services.sampler.backends.lora_adapter import merged_deltas, read_adapter
from shared.precision import served_dtype
from shared.protocol import FinishReason
from shared.weight_folder import is_adapter

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device_dtype(dtype: str) -> tuple[torch.device, torch.dtype]:
    """Device and the served dtype (`model.dtype` resolved: auto is bfloat16 on CUDA, float32 on CPU)."""
    cuda = torch.cuda.is_available()
    return torch.device("cuda" if cuda else "cpu"), DTYPES[served_dtype(dtype, cuda)]


class HFBackend(GenerationBackend):
    name = "transformers"

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", trust_remote_code: bool = False,
                 max_batch_sequences: int = 512) -> None:
        self.device, self.dtype = pick_device_dtype(dtype)
        self.model = AutoModelForCausalLM.from_pretrained(
            str(model_path), dtype=self.dtype, trust_remote_code=trust_remote_code
        ).to(self.device).eval()
        cfg = self.model.generation_config
        eos = cfg.eos_token_id if cfg.eos_token_id is not None else self.model.config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_batch_sequences = max_batch_sequences
        self._base: dict[str, torch.Tensor] = {}  # float32 base weights under a merged adapter

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[Completion]]:
        torch.manual_seed(settings.seed)
        # Split only to bound memory; each chunk is still one large batched generate call.
        per_chunk = max(1, self.max_batch_sequences // settings.n)
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), per_chunk):
            out.extend(self._generate_chunk(prompts[start : start + per_chunk], settings))
        return out

    def _generate_chunk(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[Completion]]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding: every prompt ends at column `width`
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        # top_k 0, not None, when off: None falls back to transformers' default top-k of 50
        sampling = {} if settings.greedy else dict(
            temperature=settings.temperature, top_k=max(0, settings.top_k), top_p=settings.top_p)
        res = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
            do_sample=not settings.greedy, num_return_sequences=settings.n,
            max_new_tokens=settings.max_new_tokens, min_new_tokens=0, pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids | set(settings.stop.ids)), output_scores=True,
            return_dict_in_generate=True,
            **sampling,
        )
        new = res.sequences[:, width:]  # (B*n, T)
        scores = torch.stack(res.scores, dim=1).float()  # (B*n, T, V), processed (-inf: masked)
        lp = torch.log_softmax(scores, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B*n, T)
        new, lp = new.cpu().numpy(), lp.cpu().numpy()
        flat = [self._completion(new[j], lp[j], settings) for j in range(new.shape[0])]
        return [flat[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    def _completion(self, tokens: np.ndarray, logprobs: np.ndarray, settings: SamplingSettings) -> Completion:
        stops = self.eos_ids | set(settings.stop.ids)
        ends = [k for k, t in enumerate(tokens.tolist()) if t in stops]
        if ends:  # keep the stop token: the learner trains on "stop here" too
            stop = ends[0] + 1
            reason = settings.stop.reason(int(tokens[ends[0]]))
            return Completion(tokens[:stop].astype(np.int32), logprobs[:stop].astype(np.float32), reason)
        return Completion(tokens.astype(np.int32), logprobs.astype(np.float32), FinishReason.LENGTH)

    @torch.inference_mode()
    def load_weights(self, path: Path) -> None:
        if is_adapter(path):
            return self._load_adapter(path)
        tensors: dict[str, torch.Tensor] = {}
        for file in sorted(Path(path).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                tensors.update({name: f.get_tensor(name) for name in f.keys()})
        self._copy_in(tensors, str(path))
        log.info("transformers backend: loaded weights from %s", path)

    @torch.inference_mode()
    def load_tensors(self, named) -> None:
        self._copy_in(dict(named), "pushed tensors")
        log.info("transformers backend: loaded pushed tensors")

    def _copy_in(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Check every name and shape before touching the model (a half-copied policy must never
        serve), then copy in place; a tied lm_head shares the embedding and may be absent."""
        params = dict(self.model.named_parameters())
        if self.model.config.get_text_config().tie_word_embeddings:  # a sender may list the tied copy too
            tensors = {n: t for n, t in tensors.items() if n in params or not n.startswith("lm_head.")}
        unexpected = [n for n, t in tensors.items() if n not in params or t.shape != params[n].shape]
        missing = set(params) - set(tensors)
        if self.model.config.get_text_config().tie_word_embeddings:
            missing -= {n for n in missing if n.startswith("lm_head.")}  # shares the embedding
        if unexpected or missing:
            raise IncompatibleWeights(f"{source}: does not fit this model (unexpected or mis-shaped "
                             f"{unexpected[:3]}, missing {sorted(missing)[:3]})")
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].dtype))
        self._base = {}  # a whole model replaces the base any adapter is merged into

    def _load_adapter(self, path: Path) -> None:
        """Serve base + adapter: each target weight becomes W + scale * B @ A, W from a float32
        copy of the base weights kept at the first adapter (so versions never accumulate)."""
        params = dict(self.model.named_parameters())
        adapter = read_adapter(path, {n: tuple(p.shape) for n, p in params.items()})
        deltas = merged_deltas(adapter)
        for name in deltas.keys() - self._base.keys():
            self._base[name] = params[name].detach().float().cpu().clone()
        for name, base in self._base.items():  # a weight the new adapter leaves out goes back to W
            merged = base + deltas[name] if name in deltas else base
            params[name].copy_(merged.to(params[name].dtype))
        log.info("transformers backend: merged LoRA adapter %s (rank %d, %d weights)", path, adapter.rank,
                 len(deltas))

    def close(self) -> None:
        self.model = None
