"""Agreement statistics against textbook examples worked by hand in the sources cited."""

from __future__ import annotations

import math

import pytest

from tether.feedback.agreement import (
    binomial_two_sided,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    majority,
    wilson_interval,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", sec. C: 4 observers,
# 12 units, missing values; published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
_N = None
_OBS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _N, _N, _N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _N, 3],
    [_N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _N],
]
UNITS = [[v for v in col if v is not None] for col in zip(*_OBS, strict=True)]


@pytest.mark.parametrize("metric,expected", [("nominal", 0.743), ("ordinal", 0.815),
                                             ("interval", 0.849)])
def test_krippendorff_textbook(metric: str, expected: float) -> None:
    assert krippendorff_alpha(UNITS, metric) == pytest.approx(expected, abs=5e-4)


def test_krippendorff_small_by_hand() -> None:
    # Two raters, units (a,a), (a,b), (b,b). Coincidences: o_aa = 2, o_ab = o_ba = 1,
    # o_bb = 2; n_a = n_b = 3, n = 6. D_o = (1 + 1) / 6 = 1/3;
    # D_e = (n_a n_b + n_b n_a) / (n (n - 1)) = 18 / 30 = 0.6; alpha = 1 - (1/3) / 0.6 = 4/9.
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(4 / 9)
    # a unit with one value is not pairable and changes nothing
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"], ["a"]]) == \
        pytest.approx(4 / 9)


def test_krippendorff_perfect_and_undefined() -> None:
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3]], "interval") == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))  # no variation: D_e = 0
    assert math.isnan(krippendorff_alpha([[1], [2]]))  # nothing pairable


def test_fleiss_textbook() -> None:
    # Fleiss (1971) worked example as given on Wikipedia: 10 subjects, 14 raters,
    # 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
    rows = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    counts = [{j: v for j, v in enumerate(r) if v} for r in rows]
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_by_hand_and_perfect() -> None:
    # 2 units x 2 raters: (A, A) and (A, B). P_1 = 1, P_2 = 0, mean 0.5;
    # p_A = 3/4, p_B = 1/4, P_e = 10/16; kappa = (0.5 - 0.625) / 0.375 = -1/3.
    assert fleiss_kappa([{"A": 2}, {"A": 1, "B": 1}]) == pytest.approx(-1 / 3)
    assert fleiss_kappa([{"A": 3}, {"B": 3}]) == pytest.approx(1.0)


def test_cohen_textbook() -> None:
    # Cohen's kappa example (Wikipedia): 50 proposals, yes/yes 20, yes/no 5, no/yes 10,
    # no/no 15: p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_majority_ties_and_binomial() -> None:
    assert majority([1, 1, 0]) == 1
    assert majority([1, 0]) is None and majority([]) is None
    # R: binom.test(60, 100)$p.value = 0.05688793; binom.test(5, 10) = 1
    assert binomial_two_sided(60, 100) == pytest.approx(0.05688793, abs=1e-7)
    assert binomial_two_sided(5, 10) == pytest.approx(1.0)
    assert binomial_two_sided(0, 10) == pytest.approx(2 * 0.5**10)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
