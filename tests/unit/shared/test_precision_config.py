"""The precision vocabulary (shared/precision.py): served dtype and training precision resolved
per device, and the pure-bfloat16 small-lr rule with its reason."""

import pytest

from shared.precision import BF16_MIN_LR, pure_bf16_problem, served_dtype, training_precision


@pytest.mark.parametrize("dtype, cuda, want", [
    ("auto", True, "bfloat16"), ("auto", False, "float32"),
    ("bfloat16", False, "bfloat16"), ("float32", True, "float32"), ("float16", True, "float16"),
])
def test_served_dtype(dtype, cuda, want):
    assert served_dtype(dtype, cuda) == want


@pytest.mark.parametrize("precision, served, cuda, want", [
    ("auto", "bfloat16", True, "bf16-autocast"),  # the GPU default: float32 master + bf16 forward
    ("auto", "float32", True, "fp32"),
    ("auto", "float16", True, "fp32"),             # no float16 autocast (it would need loss scaling)
    ("auto", "bfloat16", False, "fp32"),           # CPU: float32 unless asked
    ("bf16-autocast", "float32", False, "bf16-autocast"),
    ("bf16", "bfloat16", True, "bf16"),
    ("fp32", "bfloat16", True, "fp32"),
])
def test_training_precision(precision, served, cuda, want):
    assert training_precision(precision, served, cuda) == want


def test_unknown_values_are_refused():
    with pytest.raises(ValueError, match="served dtype"):
        served_dtype("int8", True)
    with pytest.raises(ValueError, match="training precision"):
        training_precision("fp8", "bfloat16", True)


def test_pure_bf16_rule():
    why = pure_bf16_problem("bf16", 3e-6)
    assert why is not None and "3e-06" in why and "bf16-autocast" in why and "2^-8" in why
    assert pure_bf16_problem("bf16", BF16_MIN_LR) is None
    assert pure_bf16_problem("bf16-autocast", 3e-6) is None and pure_bf16_problem("fp32", 1e-9) is None
