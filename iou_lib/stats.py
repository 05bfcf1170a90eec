r"""Statistics for loss comparisons over seeds: intervals, paired differences, Holm, sign test, sentences.

Experiments here compare losses trained on the *same* seeds (same data, initialisation and batch order),
so the natural unit is the per-seed difference :math:`d_s = m_A(s) - m_B(s)`. Its mean gets a 95 %
interval; a sentence says "A beats B" only when that interval excludes 0.

* :func:`mean_interval` - interval of a mean. ``method="t"``: Student's
  :math:`\bar x \pm t_{1-\alpha/2,\,n-1}\, s/\sqrt n`, then **clipped** to ``bounds`` (an IoU cannot leave
  [0, 1]; the clipped interval still contains the mean). ``method="bootstrap"``: the percentile interval of
  resampled means, which lies inside the range of the data (hence inside [0, 1]) by construction; with
  5 seeds it is too narrow (it ignores that the sd is estimated), so ``t`` is the default.
* :func:`paired_interval` - :func:`mean_interval` of ``a - b`` (no bounds: a difference of IoUs lies in
  [-1, 1], which the t interval of 5 seeds rarely leaves; pass ``bounds`` to clip).
* :func:`paired_pvalue` - two-sided paired t test; :func:`holm` - Holm's step-down correction of several
  p-values; :func:`sign_test` - exact two-sided sign test (counts only the direction of each difference).
* :func:`describe_difference` - the sentence; :func:`summarize` - mean, sd, n, interval per group of a
  tidy results table.

>>> iv = paired_interval([0.50, 0.55, 0.60, 0.52, 0.58], [0.45, 0.48, 0.50, 0.47, 0.49])
>>> round(iv.mean, 3), iv.n
(0.072, 5)
>>> describe_difference("soft IoU", "BCE", iv)
'soft IoU beats BCE by 7.2 points [4.4, 10.0] (5 paired seeds)'
>>> holm([0.01, 0.04, 0.03]).round(3).tolist()
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "Interval",
    "describe_difference",
    "holm",
    "mean_interval",
    "paired_interval",
    "paired_pvalue",
    "sign_test",
    "student_t_cdf",
    "student_t_quantile",
    "summarize",
]

BOOTSTRAP_SAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval ``[low, high]`` over ``n`` values, and how it was made."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (a difference the seeds agree on)."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _values(values: Sequence[float] | np.ndarray | pd.Series, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if np.isinf(v).any():
        raise ValueError(f"{name} contains infinite values")
    return v[~np.isnan(v)]


def student_t_cdf(t: float, df: int) -> float:
    """:math:`P(T \\le t)` for Student's t with ``df`` degrees of freedom (Simpson's rule, no SciPy).

    >>> round(student_t_cdf(0.0, 3), 6), round(student_t_cdf(2.7764, 4), 4)
    (0.5, 0.975)
    """
    if df < 1:
        raise ValueError(f"need df >= 1, got {df}")
    if t < 0:
        return 1.0 - student_t_cdf(-t, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    n = 2000  # Simpson's rule on [0, t]: 1/2 + integral of the density
    x = np.linspace(0.0, t, n + 1)
    f = np.exp(log_c - (df + 1) / 2 * np.log1p(x**2 / df))
    h = t / n
    return min(1.0, 0.5 + h / 3 * float(f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`student_t_cdf`).

    >>> round(student_t_quantile(0.975, 2), 4), round(student_t_quantile(0.975, 1000), 3)
    (4.3027, 1.962)
    """
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"need 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_interval(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    level: float = 0.95,
    method: str = "t",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
) -> Interval:
    """The ``level`` interval of the mean of ``values`` (NaNs dropped), kept inside ``bounds``.

    ``method="t"``: Student-t interval clipped to ``bounds``; ``"bootstrap"``: percentile interval of
    :data:`BOOTSTRAP_SAMPLES` resampled means (fixed ``seed``, so a table is reproducible). One value gives
    the point ``[x, x]``; no value gives NaNs.

    >>> iv = mean_interval([0.01, 0.02, 0.0])
    >>> iv.low, round(iv.high, 3)  # the t interval would reach below 0
    (0.0, 0.035)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    v = _values(values)
    if bounds is not None and len(v) and (v.min() < bounds[0] or v.max() > bounds[1]):
        raise ValueError(f"values must lie within bounds {bounds}, got range [{v.min()}, {v.max()}]")
    if len(v) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, method)
    mean = float(v.mean())
    if len(v) == 1 or np.ptp(v) == 0:
        return Interval(mean, mean, mean, len(v), method)
    alpha = 1 - level
    if method == "t":
        half = student_t_quantile(1 - alpha / 2, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
        low, high = mean - half, mean + half
    else:
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, len(v), size=(BOOTSTRAP_SAMPLES, len(v)))].mean(axis=1)
        low, high = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        low, high = min(low, mean), max(high, mean)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(mean, float(low), float(high), len(v), method)


def paired_interval(
    a: Sequence[float] | np.ndarray | pd.Series,
    b: Sequence[float] | np.ndarray | pd.Series,
    *,
    level: float = 0.95,
    method: str = "t",
    bounds: tuple[float, float] | None = None,
    seed: int = 0,
) -> Interval:
    """Interval of the mean paired difference ``a - b`` (``a[i]`` and ``b[i]`` share a seed).

    Pairs where either value is NaN are dropped.

    >>> paired_interval([0.3, 0.4], [0.1, 0.2]).mean
    0.2
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must be paired (same length), got {len(x)} and {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return mean_interval(x[keep] - y[keep], level=level, method=method, bounds=bounds, seed=seed)


def paired_pvalue(differences: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Two-sided p-value of the paired t test that the mean difference is 0 (NaN for fewer than 2).

    >>> round(paired_pvalue([0.1, 0.2, 0.15, 0.12]), 4)
    0.0072
    """
    d = _values(differences, "differences")
    if len(d) < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    if sd == 0:
        return 1.0 if d.mean() == 0 else 0.0
    t = abs(float(d.mean())) / (sd / math.sqrt(len(d)))
    return min(1.0, 2 * (1 - student_t_cdf(t, len(d) - 1)))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Sorted ascending, :math:`\\tilde p_{(i)} = \\max_{j \\le i} \\min(1, (m - j + 1)\\, p_{(j)})`; reject
    where :math:`\\tilde p \\le \\alpha`. NaNs stay NaN and do not count in :math:`m`.

    >>> holm([0.04, 0.01]).tolist()
    [0.04, 0.02]
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted) if m else adjusted
    return out


@dataclasses.dataclass(frozen=True)
class SignTest:
    """How many differences are positive / negative (zeros dropped) and the exact two-sided p-value."""

    positive: int
    negative: int
    pvalue: float


def sign_test(differences: Sequence[float] | np.ndarray | pd.Series) -> SignTest:
    """Exact two-sided sign test: under H0 each non-zero difference is positive with probability 1/2.

    >>> sign_test([0.1, 0.2, 0.3, 0.05, 0.02, -0.01])
    SignTest(positive=5, negative=1, pvalue=0.21875)
    """
    d = _values(differences, "differences")
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    n, k = pos + neg, min(pos, neg)
    if n == 0:
        return SignTest(0, 0, 1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return SignTest(pos, neg, min(1.0, 2 * tail))


def describe_difference(
    name_a: str,
    name_b: str,
    interval: Interval,
    unit: str = "points",
    scale: float = 100.0,
    digits: int = 1,
    higher_is_better: bool = True,
    verb: str = "beats",
) -> str:
    """A sentence for the paired interval of ``a - b``; it claims a winner only when 0 is outside.

    ``scale`` turns the metric into ``unit`` (100: IoU in [0, 1] -> percentage points). For a metric where
    lower is better (``higher_is_better=False``, e.g. a calibration error) the winner is the lower one;
    ``verb`` names what winning means.

    >>> describe_difference("BCE", "weighted BCE", Interval(-0.02, -0.03, -0.01, 5), higher_is_better=False,
    ...                     verb="is better calibrated than")
    'BCE is better calibrated than weighted BCE by 2.0 points [1.0, 3.0] (5 paired seeds)'

    >>> describe_difference("soft IoU", "BCE", Interval(0.061, 0.032, 0.090, 5))
    'soft IoU beats BCE by 6.1 points [3.2, 9.0] (5 paired seeds)'
    >>> describe_difference("soft IoU", "BCE", Interval(-0.061, -0.090, -0.032, 5))
    'BCE beats soft IoU by 6.1 points [3.2, 9.0] (5 paired seeds)'
    >>> describe_difference("soft IoU", "BCE", Interval(0.02, -0.01, 0.05, 3))
    'no clear difference between soft IoU and BCE: +2.0 points [-1.0, +5.0] (3 paired seeds)'
    """
    if not isinstance(interval, Interval):
        raise TypeError(f"interval must be an Interval, got {type(interval).__name__}")
    if interval.n == 0 or math.isnan(interval.mean):
        return f"no paired runs of {name_a} and {name_b} to compare"
    seeds = f"({interval.n} paired seed{'s' if interval.n != 1 else ''})"
    m, lo, hi = (x * scale for x in (interval.mean, interval.low, interval.high))
    if interval.n < 2:
        return f"{name_a} - {name_b}: {m:+.{digits}f} {unit} from one seed, no interval {seeds}"
    if interval.excludes_zero:
        a_wins = (interval.low > 0) == higher_is_better
        winner, loser = (name_a, name_b) if a_wins else (name_b, name_a)
        sign = 1 if interval.low > 0 else -1  # report the size of the gap, positive
        lo, hi = sorted((sign * lo, sign * hi))
        span = f"[{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{winner} {verb} {loser} by {sign * m:.{digits}f} {unit} {span} {seeds}"
    return (
        f"no clear difference between {name_a} and {name_b}: {m:+.{digits}f} {unit} "
        f"[{lo:+.{digits}f}, {hi:+.{digits}f}] {seeds}"
    )


def last_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run at its last ``step`` (new tables) or ``epoch`` (old tables)."""
    for column in ("step", "epoch"):
        if column in rows and "run" in rows and len(rows):
            values = pd.to_numeric(rows[column], errors="coerce")
            return rows[values == values.groupby(rows["run"]).transform("max")]
    return rows


def summarize(
    table: pd.DataFrame,
    metric: str = "miou_d",
    split: str = "test",
    by: Sequence[str] = ("data", "fg_frac", "class_name", "loss"),
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> pd.DataFrame:
    """Mean, sd, n, the half width ``ci95`` of the 95 % t interval and its ends ``low``/``high`` clipped to
    ``bounds`` (``None``: not clipped), of ``metric`` over runs (seeds), per group of ``by``.

    Uses each run's last ``step`` (or ``epoch``) of ``split``; ``by`` names the grouping columns present.

    >>> t = pd.DataFrame({"loss": ["bce"] * 3, "split": "test", "metric": "miou_d", "value": [0.5, 0.6, 0.7]})
    >>> s = summarize(t, by=("loss",))
    >>> s[["mean", "sd", "n"]].round(3).values.tolist()
    [[0.6, 0.1, 3.0]]
    >>> round(float(s["ci95"].iloc[0]), 3)  # t(0.975, 2) * sd / sqrt(3)
    0.248
    """
    rows = last_rows(table[(table["split"] == split) & (table["metric"] == metric)])
    keys = [k for k in by if k in rows.columns]
    out = rows.groupby(keys, dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"std": "sd", "count": "n"})
    out["n"] = out["n"].astype(float)
    out["ci95"] = [
        student_t_quantile(0.975, int(n) - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        for sd, n in zip(out["sd"], out["n"], strict=True)
    ]
    low, high = out["mean"] - out["ci95"], out["mean"] + out["ci95"]
    out["low"] = low.clip(lower=bounds[0]) if bounds else low
    out["high"] = high.clip(upper=bounds[1]) if bounds else high
    return out
