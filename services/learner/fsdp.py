"""`learner.parallel: fsdp`: the policy sharded over the ranks with FSDP2 (`fully_shard`).

Each decoder layer is its own FSDP unit (its parameters all-gathered just before it runs and
freed after), the root unit holds the rest (embeddings, final norm, output layer). Parameters,
gradients and AdamW state live as shards (DTensors): a rank holds 1/N of them. Everything else
is the data-parallel learner's (`distributed`): rank 0 reads the stream and broadcasts each
step's samples, the loss is normalised by whole-update totals, so gradients are *summed* over
ranks (the reduce-scatter divides by 1, not N).

Three rules the rest of the learner follows here:
- every rank runs the same number of forward/backward passes per update (a collective per
  unit): a rank with fewer micro-batches runs a zero-loss one (`even_passes`, `null_pass`);
- the trainer's chunked log-probs read the output layer's weight outside `lm_head.forward`, so
  that path runs inside the root unit's forward hooks (`in_root_forward`);
- publishing, checkpointing and the final save are collectives that rank 0 starts outside a
  step: it `announce`s each one, the other ranks (waiting for samples) join it (`ShardedPolicy`).

Precision: with `bf16-autocast` the layers are all-gathered in bfloat16 (`MixedPrecisionPolicy`
param_dtype) and their gradients reduced in float32; the root unit stays float32 under autocast,
as the data-parallel learner runs it, so the chunked output layer casts per chunk (see
`shared.algo.chunked_logprobs`). Master weights and AdamW state are float32 shards.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

from services.learner.distributed import DistContext, announce, broadcast_bytes
from services.learner.model import Placement

log = logging.getLogger(__name__)
GATHER, SAVE = 1, 2  # the collectives rank 0 announces
DCP_DIR = "dcp"  # a checkpoint's sharded model + AdamW state (torch.distributed.checkpoint)


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not len(layers):
        raise ValueError(f"learner.parallel=fsdp: found no decoder layers in {type(model).__name__}")
    return list(layers)


def shard(model: Any, place: Placement, world: int) -> Any:
    """`fully_shard` each decoder layer, then the root; moves the shards to `place.device`."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(place.device.type, (world,))
    reduce = torch.float32
    layer_dtype = torch.bfloat16 if place.precision == "bf16-autocast" else None
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=MixedPrecisionPolicy(param_dtype=layer_dtype, reduce_dtype=reduce))
    fully_shard(model, mesh=mesh, mp_policy=MixedPrecisionPolicy(reduce_dtype=reduce))
    for module in model.modules():
        if hasattr(module, "set_gradient_divide_factor"):
            module.set_gradient_divide_factor(1.0)  # sum: the loss is already a whole-batch mean
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
    model.set_reduce_scatter_unused_params(True)  # a parameter one rank left without a gradient still joins
    model.dashrl_forward = types.MethodType(lambda self, fn, *args: fn(*args), model)
    register_fsdp_forward_method(model, "dashrl_forward")
    log.info("fsdp: %d decoder layers + root sharded over %d ranks (layers computed in %s)",
             len(decoder_layers(model)), world, layer_dtype or place.param_dtype)
    return model


def is_sharded(model: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def in_root_forward(model: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` with the root unit's parameters gathered (as in `model.forward`) when sharded."""
    method = getattr(model, "dashrl_forward", None)
    return fn(*args) if method is None else method(fn, *args)


NULL_PASS = None
"""What `even_passes` yields for a pass without samples (`null_pass`)."""


def even_passes(mine: Iterator[Any], total: int, world: int) -> Iterator[Any]:
    """This rank's micro-batches `mine` (every `world`-th of `total`), then NULL_PASS up to
    ceil(total / world): the busiest rank's count, the same on every rank (they pack the same
    samples alike), with no collective to learn it (one here would interleave with another
    rank's FSDP all-gathers)."""
    ran = 0
    for mb in mine:
        ran += 1
        yield mb
    for _ in range(-(-total // world) - ran if world > 1 else 0):
        yield NULL_PASS


def null_pass(model: Any, device: torch.device) -> None:
    """A forward/backward of one token with zero loss: every unit all-gathers and reduce-scatters
    (zeros) as on the other ranks, the gradients do not change."""
    out = model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device), use_cache=False).logits
    (out.float().sum() * 0.0).backward()


def grad_norm_value(norm: torch.Tensor) -> float:
    """clip_grad_norm_'s total norm as a float (a DTensor over sharded gradients)."""
    full = getattr(norm, "full_tensor", None)
    return float(full() if full is not None else norm)


class GatheredPolicy:
    """The sharded model as weight publishing and `save_pretrained` read it: its config and
    save_pretrained, with the full state dict gathered on rank 0 (float32, on the CPU)."""

    def __init__(self, model: Any, state: dict[str, torch.Tensor]) -> None:
        self._model, self._state, self.config = model, state, model.config
        self.dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state

    def save_pretrained(self, folder: Any, state_dict: dict[str, torch.Tensor] | None = None, **kw: Any) -> None:
        self._model.save_pretrained(folder, state_dict=self._state if state_dict is None else state_dict, **kw)

    def get_input_embeddings(self) -> None:
        return None  # shared.weights.model_ties_embeddings then reads the config's flag

    def get_output_embeddings(self) -> None:
        return None


class ShardedPolicy:
    """The collectives over the sharded model that rank 0 starts outside a step. Rank 0 calls
    `gathered()` / `write(folder)` / `release()`; the other ranks join through `handle`
    (passed to `broadcast_bytes` while they wait for samples) and `follow()` (after the loop)."""

    def __init__(self, model: Any, optimizer: torch.optim.Optimizer, ctx: DistContext, device: torch.device) -> None:
        self.model, self.optimizer, self.ctx, self.device = model, optimizer, ctx, device

    def gathered(self) -> GatheredPolicy | None:
        """Rank 0: the full weights (None elsewhere)."""
        announce(self.ctx, GATHER, self.device)
        state = self._gather()
        return GatheredPolicy(self.model, state) if self.ctx.is_main else None

    def write(self, folder: Path) -> None:
        """Rank 0: every rank writes its shards of the model and AdamW into `folder/dcp/`."""
        announce(self.ctx, SAVE, self.device)
        broadcast_bytes(self.ctx, str(folder).encode(), self.device)
        self._save(folder)

    def release(self) -> None:
        """Rank 0, at the end: the other ranks' `follow()` returns."""
        broadcast_bytes(self.ctx, None, self.device)

    def follow(self) -> None:
        """Other ranks, after the loop: join rank 0's final collectives until it releases them."""
        broadcast_bytes(self.ctx, None, self.device, on_op=self.handle)

    def handle(self, op: int) -> None:
        if op == GATHER:
            self._gather()
        elif op == SAVE:
            self._save(Path(broadcast_bytes(self.ctx, None, self.device).decode()))
        else:
            raise RuntimeError(f"fsdp: unknown collective {op} announced by rank 0")

    def load(self, checkpoint: Path) -> None:
        """Every rank: the model and AdamW shards from a checkpoint's `dcp/` (any rank count)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(checkpoint / DCP_DIR))
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def _gather(self) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _save(self, folder: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(folder / DCP_DIR))
        dist.barrier()  # every rank's shard is on disk before rank 0 renames the folder


def check_resumable(checkpoint: Path, parallel: str) -> None:
    """A checkpoint resumes only under the `learner.parallel` that wrote it."""
    sharded = (checkpoint / DCP_DIR).is_dir()
    if sharded != (parallel == "fsdp"):
        raise RuntimeError(f"{checkpoint}: written with learner.parallel={'fsdp' if sharded else 'ddp'}; "
                           f"resume it with that setting (this run has {parallel})")
