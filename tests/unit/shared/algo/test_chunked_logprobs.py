"""Chunked projection + scoring equals projecting every position at once, with temperature/top-k/
top-p: values and gradients (hidden, weight, bias) to 1e-5 in float32. Under bf16 autocast the
values and the hidden-state gradient match to 1e-5 too; the weight and bias gradients are sums
over positions that the plain path rounds to bfloat16 once and the chunked path once per chunk,
so there they agree to bfloat16 resolution and are no further from the float32 gradient."""

import pytest
import torch
import torch.nn.functional as F

from shared.algo.chunked_logprobs import chunked_token_logprobs
from shared.algo.logprobs import RAW, SamplingDistribution, token_logprobs

DISTS = [RAW, SamplingDistribution(temperature=0.7, top_k=20), SamplingDistribution(temperature=1.3, top_p=0.9)]


def _inputs(n=37, h=16, v=300, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = torch.randn(v, h, generator=g).mul_(0.5).requires_grad_()
    b = torch.randn(v, generator=g).requires_grad_() if bias else None
    weights = torch.randn(n, generator=g)  # a loss weighting positions differently
    return hidden, weight, b, weights


def _grads(fn, hidden, weight, bias, targets, weights, autocast=False):
    for t in (hidden, weight, bias):
        if t is not None:
            t.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logp = fn(hidden, weight, bias, targets)
    kept = torch.isfinite(logp)
    (torch.where(kept, logp, 0.0) * weights).sum().backward()
    return logp.detach(), [t.grad.clone() for t in (hidden, weight, bias) if t is not None]


@pytest.mark.parametrize("dist", DISTS, ids=["raw", "temp-topk", "temp-topp"])
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("chunk", [1, 8, 1000])
def test_chunked_equals_plain(dist, autocast, chunk):
    hidden, weight, bias, weights = _inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        targets = F.linear(hidden, weight, bias).float().argsort(-1, descending=True)[:, :15:3].reshape(-1)[:37]
    plain = lambda h, w, b, t: token_logprobs(F.linear(h, w, b), t, dist)  # noqa: E731
    lean = lambda h, w, b, t: chunked_token_logprobs(h, w, b, t, dist, chunk)  # noqa: E731
    want, want_grads = _grads(plain, hidden, weight, bias, targets, weights, autocast)
    got, got_grads = _grads(lean, hidden, weight, bias, targets, weights, autocast)
    assert got.dtype == torch.float32 and got.shape == (37,)
    assert torch.equal(torch.isfinite(got), torch.isfinite(want))
    if dist.masks:
        assert not torch.isfinite(want).all()  # some targets fall outside the kept set
    fin = torch.isfinite(want)
    torch.testing.assert_close(got[fin], want[fin], atol=1e-5, rtol=0)
    torch.testing.assert_close(got_grads[0], want_grads[0], atol=1e-5, rtol=0)  # d hidden
    if not autocast:
        for a, b in zip(got_grads[1:], want_grads[1:]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    else:
        _, exact = _grads(plain, hidden, weight, bias, targets, weights, autocast=False)
        for a, b, e in zip(got_grads[1:], want_grads[1:], exact[1:]):
            assert (a - b).abs().max() <= 2**-7 * b.abs().max()  # bfloat16 resolution
            assert (a - e).abs().max() <= 1.5 * (b - e).abs().max() + 1e-6  # no less accurate
    assert max(g.abs().max().item() for g in want_grads) > 1e-2  # a real gradient was compared


def test_no_bias_and_no_grad_paths():
    hidden, weight, _, _ = _inputs(bias=False)
    targets = torch.arange(37)
    with torch.no_grad():
        got = chunked_token_logprobs(hidden, weight, None, targets, RAW, chunk=5)
        want = token_logprobs(F.linear(hidden, weight), targets, RAW)
    assert not got.requires_grad
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert chunked_token_logprobs(hidden[:0], weight, None, targets[:0]).shape == (0,)
    with pytest.raises(ValueError, match="chunk"):
        chunked_token_logprobs(hidden, weight, None, targets, RAW, chunk=0)


def test_backward_keeps_no_vocabulary_sized_tensor_of_all_positions():
    """What forward saves for backward: the inputs, never a (positions, vocabulary) tensor."""
    hidden, weight, bias, _ = _inputs(n=64, v=500)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        chunked_token_logprobs(hidden, weight, bias, torch.zeros(64, dtype=torch.long), RAW, chunk=16)
    assert saved and all(s.numel() < 64 * 500 for s in map(torch.Size, saved))
