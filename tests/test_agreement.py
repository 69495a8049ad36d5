"""Objective-vs-subjective agreement metrics against scipy on known data."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.agreement import agreement, logistic4


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 60)
    y = 1 + 4 / (1 + np.exp(-(x - 5) / 1.5)) + rng.normal(0, 0.2, 60)
    return x, y


def test_rank_correlations_equal_scipy(data):
    x, y = data
    a = agreement(x, y)
    assert a.srocc == pytest.approx(stats.spearmanr(x, y).statistic)
    assert a.krcc == pytest.approx(stats.kendalltau(x, y).statistic)
    assert a.plcc == pytest.approx(stats.pearsonr(x, y).statistic)
    assert a.n == 60


def test_mappings_fit_their_own_shapes():
    x = np.linspace(-2, 2, 40)
    cubic = agreement(x, 0.5 * x**3 - x + 2)
    assert cubic.plcc_poly3 == pytest.approx(1.0, abs=1e-12)
    assert cubic.rmse_poly3 == pytest.approx(0.0, abs=1e-9)
    logi = agreement(x, logistic4(x, 5.0, 1.0, 0.3, 0.5))
    assert logi.plcc_logistic4 == pytest.approx(1.0, abs=1e-8)
    assert logi.rmse_logistic4 == pytest.approx(0.0, abs=1e-6)


def test_mapped_plcc_and_rmse_match_a_direct_computation(data):
    x, y = data
    a = agreement(x, y)
    xs = (x - x.mean()) / x.std()
    fitted = np.polyval(np.polyfit(xs, y, 3), xs)
    assert a.plcc_poly3 == pytest.approx(stats.pearsonr(fitted, y).statistic)
    assert a.rmse_poly3 == pytest.approx(np.sqrt(np.mean((y - fitted) ** 2)))
    assert a.main_score == pytest.approx((abs(a.srocc) + abs(a.plcc_poly3)) / 2)
    assert agreement(x, y, main_mapping="logistic4").main_score == pytest.approx(
        (abs(a.srocc) + abs(a.plcc_logistic4)) / 2
    )


def test_decreasing_metric_and_outliers(data):
    x, y = data
    a = agreement(-x, y)
    assert a.srocc < 0 and a.main_score > 0.9
    assert a.plcc_logistic4 > 0.95
    big_ci = agreement(x, y, subjective_ci=np.full(60, 10.0))
    assert big_ci.outlier_ratio_poly3 == 0.0
    assert big_ci.outlier_threshold == "given CI"
    tiny_ci = agreement(x, y, subjective_ci=np.full(60, 1e-6))
    assert tiny_ci.outlier_ratio_poly3 == 1.0
    assert 0 <= a.outlier_ratio_poly3 < 0.15


def test_series_are_aligned_and_outputs_shaped(data):
    x, y = data
    sx = pd.Series(x, index=[f"m{i}" for i in range(60)])
    sy = pd.Series(y, index=[f"m{i}" for i in range(60)]).iloc[::-1]
    a = agreement(sx, sy)
    assert a.srocc == pytest.approx(stats.spearmanr(x, y).statistic)
    frame = a.to_frame()
    assert {"srocc", "krcc", "plcc_poly3", "plcc_logistic4", "rmse_poly3", "main_score"} <= set(frame["metric"])
    assert a.as_dict()["main_mapping"] == "poly3"


def test_bad_input():
    with pytest.raises(ValueError, match="at least 5"):
        agreement([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="non-finite"):
        agreement([1, 2, 3, 4, np.nan, 6], [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="equal length"):
        agreement([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6])
