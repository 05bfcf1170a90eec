"""iou_lib.stats: intervals, p-values, Holm, sign test and the sentence that reports a paired interval."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_lib import stats
from iou_lib.stats import Interval

# Student-t quantiles from printed tables (p = 0.975)
T_TABLE = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 29: 2.0452}

unit = st.floats(0, 1, allow_nan=False)
samples = st.lists(unit, min_size=2, max_size=12)


@pytest.mark.parametrize("df,q", T_TABLE.items())
def test_t_quantile_and_cdf_match_tables(df, q):
    assert stats.student_t_quantile(0.975, df) == pytest.approx(q, abs=2e-4)
    assert stats.student_t_cdf(q, df) == pytest.approx(0.975, abs=1e-5)
    assert stats.student_t_cdf(-q, df) == pytest.approx(0.025, abs=1e-5)


def test_experiments_still_exports_the_moved_functions():
    from iou_lib import experiments

    assert experiments.summarize is stats.summarize
    assert experiments.student_t_quantile is stats.student_t_quantile


def test_mean_interval_t_is_the_textbook_interval_and_clips_to_bounds():
    v = np.array([0.5, 0.6, 0.7])
    iv = stats.mean_interval(v)
    half = T_TABLE[2] * v.std(ddof=1) / math.sqrt(3)
    assert (iv.low, iv.high) == pytest.approx((0.6 - half, 0.6 + half), abs=1e-4)
    near_zero = stats.mean_interval([0.0, 0.01, 0.05])
    assert near_zero.low == 0.0 and near_zero.high < 1  # the unclipped t interval reaches below 0
    assert stats.mean_interval([0.0, 0.01, 0.05], bounds=None).low < 0
    assert stats.mean_interval([0.3]) == Interval(0.3, 0.3, 0.3, 1, "t")
    assert math.isnan(stats.mean_interval([]).mean)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="within bounds"):
        stats.mean_interval([0.5, 1.5])
    with pytest.raises(ValueError, match="method"):
        stats.mean_interval([0.5], method="normal")
    with pytest.raises(ValueError, match="infinite"):
        stats.mean_interval([0.5, math.inf], bounds=None)
    with pytest.raises(ValueError, match="paired"):
        stats.paired_interval([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="p-values"):
        stats.holm([0.5, 1.2])
    with pytest.raises(TypeError, match="Interval"):
        stats.describe_difference("a", "b", (0.1, 0.0, 0.2))


@settings(max_examples=60, deadline=None)
@given(samples, st.sampled_from(["t", "bootstrap"]))
def test_mean_interval_contains_the_mean_and_stays_in_unit_interval(values, method):
    iv = stats.mean_interval(values, method=method)
    assert 0.0 <= iv.low <= iv.mean + 1e-12 and iv.mean - 1e-12 <= iv.high <= 1.0
    assert iv.mean == pytest.approx(np.mean(values))
    if method == "bootstrap":  # percentile bootstrap never leaves the data's range
        assert min(values) - 1e-12 <= iv.low and iv.high <= max(values) + 1e-12


@settings(max_examples=40, deadline=None)
@given(samples, st.floats(0.5, 0.99))
def test_a_higher_level_gives_a_wider_t_interval(values, level):
    narrow = stats.mean_interval(values, level=level, bounds=None)
    wide = stats.mean_interval(values, level=min(0.999, level + 0.005), bounds=None)
    assert wide.low <= narrow.low + 1e-12 and wide.high >= narrow.high - 1e-12


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(unit, unit), min_size=2, max_size=10), st.floats(-0.5, 0.5))
def test_paired_interval_is_shift_equivariant_and_antisymmetric(pairs, shift):
    a, b = map(np.array, zip(*pairs, strict=True))
    iv = stats.paired_interval(a, b)
    moved = stats.paired_interval(a + shift, b)
    assert (moved.low, moved.mean, moved.high) == pytest.approx(
        (iv.low + shift, iv.mean + shift, iv.high + shift)
    )
    flipped = stats.paired_interval(b, a)
    assert (flipped.low, flipped.high) == pytest.approx((-iv.high, -iv.low))


def test_pairing_removes_the_shared_seed_effect():
    seed_effect = np.array([0.1, 0.5, 0.3, 0.7, 0.2])
    a, b = seed_effect + 0.05 + np.array([0, 0.01, -0.01, 0.005, 0]), seed_effect
    paired = stats.paired_interval(a, b)
    assert paired.excludes_zero and paired.low > 0.03
    assert not (stats.mean_interval(a).low > stats.mean_interval(b).high)  # separate intervals overlap


def test_paired_pvalue_agrees_with_the_t_quantile():
    # differences whose t statistic is exactly t(0.975, 4): two-sided p = 0.05
    d = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    d = d + T_TABLE[4] * d.std(ddof=1) / math.sqrt(5)
    assert stats.paired_pvalue(d) == pytest.approx(0.05, abs=1e-4)
    assert stats.paired_pvalue([0.1, 0.1, 0.1]) == 0.0 and stats.paired_pvalue([0, 0]) == 1.0
    assert math.isnan(stats.paired_pvalue([0.3]))


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.30 -> 4*0.01, 3*0.02, 2*0.04, 1*0.30 (running max)
    np.testing.assert_allclose(stats.holm([0.30, 0.04, 0.01, 0.02]), [0.30, 0.08, 0.04, 0.06])
    out = stats.holm([0.2, math.nan, 0.01])
    assert math.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.2, 0.02])


@settings(max_examples=80, deadline=None)
@given(st.lists(unit, min_size=1, max_size=15))
def test_holm_laws(p):
    p = np.array(p)
    adj = stats.holm(p)
    assert (adj >= p - 1e-15).all() and (adj <= 1).all()  # never smaller than raw, never above 1
    order = np.argsort(p, kind="stable")
    assert (np.diff(adj[order]) >= -1e-15).all()  # monotone in the raw p-values
    assert adj.min() == pytest.approx(min(1.0, len(p) * p.min()))  # the smallest gets Bonferroni
    assert np.all(stats.holm(np.minimum(p * 0.5, 1)) <= adj + 1e-15)  # smaller inputs, smaller outputs


def test_sign_test_exact_values():
    assert stats.sign_test([1, 1, 1, 1, 1]).pvalue == pytest.approx(2 / 32)
    assert stats.sign_test([1, -1, 0]) == stats.SignTest(1, 1, 1.0)  # the zero is dropped
    assert stats.sign_test([0, 0]).pvalue == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=20))
def test_sign_test_is_symmetric_and_a_probability(d):
    a, b = stats.sign_test(d), stats.sign_test([-x for x in d])
    assert a.pvalue == pytest.approx(b.pvalue) and 0 < a.pvalue <= 1
    assert (a.positive, a.negative) == (b.negative, b.positive)


def test_describe_difference_claims_only_what_the_interval_allows():
    win = stats.describe_difference("soft IoU", "BCE", Interval(0.061, 0.032, 0.090, 5))
    assert win == "soft IoU beats BCE by 6.1 points [3.2, 9.0] (5 paired seeds)"
    lose = stats.describe_difference("soft IoU", "BCE", Interval(-0.061, -0.090, -0.032, 5))
    assert lose.startswith("BCE beats soft IoU by 6.1 points [3.2, 9.0]")
    tie = stats.describe_difference("soft IoU", "BCE", Interval(0.18, -0.21, 0.56, 3))
    assert tie.startswith("no clear difference between soft IoU and BCE: +18.0 points [-21.0, +56.0]")
    assert "beats" not in tie
    assert "one seed" in stats.describe_difference("a", "b", Interval(0.1, 0.1, 0.1, 1))
    assert stats.describe_difference(
        "a", "b", Interval(0.01, 0.005, 0.02, 4), unit="", scale=1, digits=3
    ) == ("a beats b by 0.010  [0.005, 0.020] (4 paired seeds)")


@settings(max_examples=60, deadline=None)
@given(st.floats(-0.5, 0.5), st.floats(0.001, 0.3), st.integers(2, 10))
def test_describe_difference_says_beats_iff_the_interval_excludes_zero(mean, half, n):
    iv = Interval(mean, mean - half, mean + half, n)
    text = stats.describe_difference("A", "B", iv)
    assert ("beats" in text) == iv.excludes_zero
    assert text.startswith("no clear difference") != iv.excludes_zero


def test_summarize_uses_each_runs_last_step_or_epoch_and_clips():
    rows = [
        {"run": f"r{i}", "loss": "bce", "split": "test", "metric": "miou_d", "step": 100, "value": v}
        for i, v in enumerate([0.0, 0.02, 0.01])
    ]
    rows.append({"run": "r0", "loss": "bce", "split": "test", "metric": "miou_d", "step": 50, "value": 0.9})
    s = stats.summarize(pd.DataFrame(rows), by=("loss",))
    assert s.loc[0, "n"] == 3 and s.loc[0, "mean"] == pytest.approx(0.01)
    assert s.loc[0, "low"] == 0.0 and s.loc[0, "high"] == pytest.approx(0.01 + s.loc[0, "ci95"])
    old = pd.DataFrame(rows).rename(columns={"step": "epoch"})
    assert stats.summarize(old, by=("loss",)).loc[0, "mean"] == pytest.approx(0.01)
