"""Inter-annotator agreement: Krippendorff's alpha, Cohen's and Fleiss' kappa, and friends.

Pure functions of plain Python values (no numpy needed, sizes are small).

- :func:`krippendorff_alpha`: any number of raters per unit, missing values
  allowed, nominal / ordinal / interval distance (Krippendorff 2011, "Computing
  Krippendorff's Alpha-Reliability", coincidence-matrix form).
- :func:`cohen_kappa`: two raters over the same units (Cohen 1960).
- :func:`fleiss_kappa`: many raters, category counts per unit (Fleiss 1971); the
  per-unit agreement uses each unit's own rater count, so units with different
  numbers of raters are allowed.
- :func:`majority`, :func:`binomial_two_sided`: for agreement with the majority
  and the position-bias check.

Undefined values (no pairable data, or no variation at all so that expected
disagreement is zero) are ``nan``; callers report them as ``None``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Literal

Metric = Literal["nominal", "ordinal", "interval"]


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], metric: Metric = "nominal") -> float:
    """Krippendorff's alpha = 1 - D_o / D_e over units of rater values (missing left out).

    Coincidences: each ordered pair of values (c, k) from two different raters of a
    unit with m_u values adds 1 / (m_u - 1) to o[c][k]; n_c = sum_k o[c][k], n = sum n_c.
    D_o = sum o[c][k] d(c, k) / n and D_e = sum n_c n_k d(c, k) / (n (n - 1)), with
    d = [c != k] (nominal), (c - k)^2 (interval), or for ordinal values
    (sum_{g between c and k} n_g - (n_c + n_k) / 2)^2 (Krippendorff 2011, sec. E).
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    o: Counter[tuple[Hashable, Hashable]] = Counter()
    for u in pairable:
        m = len(u)
        for i, c in enumerate(u):
            for j, k in enumerate(u):
                if i != j:
                    o[(c, k)] += 1.0 / (m - 1)
    n_c: Counter[Hashable] = Counter()
    for (c, _k), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    if n <= 1:
        return math.nan
    values = sorted(n_c, key=_sort_key)
    delta = _distance(metric, values, n_c)
    d_o = sum(v * delta(c, k) for (c, k), v in o.items()) / n
    d_e = sum(n_c[c] * n_c[k] * delta(c, k) for c in values for k in values) / (n * (n - 1))
    if d_e == 0:
        return math.nan
    return 1.0 - d_o / d_e


def _sort_key(v: Hashable) -> tuple[int, object]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def _distance(metric: Metric, values: list[Hashable], n_c: Counter[Hashable]):
    if metric == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if metric == "interval":
        return lambda c, k: float(c - k) ** 2  # type: ignore[operator]
    if metric == "ordinal":
        rank = {v: i for i, v in enumerate(values)}

        def ordinal(c: Hashable, k: Hashable) -> float:
            lo, hi = sorted((rank[c], rank[k]))
            between = sum(n_c[values[g]] for g in range(lo, hi + 1))
            return (between - (n_c[c] + n_c[k]) / 2.0) ** 2

        return ordinal
    raise ValueError(f"unknown metric {metric!r}")


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels of the same units: (p_o - p_e) / (1 - p_e)."""
    if len(a) != len(b):
        raise ValueError("cohen_kappa: the two raters must label the same units")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[c] * cb[c] for c in ca) / (n * n)
    if p_e == 1:
        return math.nan
    return (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: Sequence[dict[Hashable, int]]) -> float:
    """Fleiss' kappa from per-unit category counts ``{category: raters who chose it}``.

    P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)) for each unit with n_i >= 2 raters;
    p_j = sum_i n_ij / sum_i n_i; kappa = (mean P_i - sum p_j^2) / (1 - sum p_j^2).
    """
    rows = [c for c in counts if sum(c.values()) >= 2]
    if not rows:
        return math.nan
    p_i = []
    totals: Counter[Hashable] = Counter()
    for c in rows:
        n_i = sum(c.values())
        p_i.append((sum(v * v for v in c.values()) - n_i) / (n_i * (n_i - 1)))
        totals.update(c)
    grand = sum(totals.values())
    p_e = sum((v / grand) ** 2 for v in totals.values())
    if p_e == 1:
        return math.nan
    return (sum(p_i) / len(p_i) - p_e) / (1 - p_e)


def majority(labels: Sequence[Hashable]) -> Hashable | None:
    """The most frequent label, or ``None`` when empty or when two labels tie for first."""
    if not labels:
        return None
    top = Counter(labels).most_common(2)
    if len(top) == 2 and top[0][1] == top[1][1]:
        return None
    return top[0][0]


def binomial_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial p-value of ``k`` successes in ``n`` trials.

    Sums the probabilities of all outcomes no more likely than the observed one
    (the usual definition, as in R's ``binom.test``).
    """
    if n == 0:
        return 1.0
    probs = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    cutoff = probs[k] * (1 + 1e-7)
    return min(1.0, sum(q for q in probs if q <= cutoff))


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def finite_or_none(x: float) -> float | None:
    """``x`` rounded to 4 places, or ``None`` if it is nan (for JSON reports)."""
    return None if x is None or math.isnan(x) else round(x, 4)
