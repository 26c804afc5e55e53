"""The unbiased pass@k estimator, 1 - C(n-c, k) / C(n, k), on exact numbers."""

from fractions import Fraction
from math import comb

import pytest

from services.sampler.evaluation import pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (1, 0, 1, 0.0), (1, 1, 1, 1.0),
    (4, 1, 1, 0.25),            # pass@1 is c / n
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 2, 2, 5 / 6),           # 1 - C(2,2)/C(4,2) = 1 - 1/6
    (4, 1, 4, 1.0),             # any correct sample in all four
    (10, 3, 5, 11 / 12),        # 1 - C(7,5)/C(10,5) = 1 - 21/252
    (8, 0, 8, 0.0), (8, 8, 1, 1.0),
    (5, 4, 2, 1.0),             # n - c < k: every k-subset holds a correct one
])
def test_pass_at_k_exact(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)


def test_pass_at_k_matches_the_product_form_for_large_n():
    # Chen et al.'s numerically stable form: 1 - prod_{i=n-c+1}^{n} (1 - k / i)
    n, c, k = 200, 17, 10
    prod = Fraction(1)
    for i in range(n - c + 1, n + 1):
        prod *= 1 - Fraction(k, i)
    assert pass_at_k(n, c, k) == pytest.approx(float(1 - prod), abs=1e-15)
    assert float(1 - Fraction(comb(n - c, k), comb(n, k))) == pytest.approx(pass_at_k(n, c, k), abs=1e-15)


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)
