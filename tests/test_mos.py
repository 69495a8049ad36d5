"""MOS and DMOS with rater-clustered, Student-t and rater-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import frames
from analysis.mos import dmos, mos, rater_bootstrap
from analysis.simulate import RatingsDesign, RatingsPanel, RatingsTruth, simulate_ratings


def ratings_frame(rater, content, cond, score, method="acr5", **extra) -> pd.DataFrame:
    rater = [str(x) for x in rater]
    df = pd.DataFrame({
        "study": "s", "rater": rater, "session": [f"{r}-1" for r in rater], "trial": 0,
        "content": list(content), "cond": list(cond), "score": list(score), "method": method, "repeat_of": None,
        "gold_expected": None, "answered_at": None, "watch_ms": 10_000, "stalls": 0, **extra,
    })
    df["trial"] = df.groupby("rater").cumcount() + 1
    return df


def normal_panel(n_raters=40, n_stim=30, rater_sd=0.0, seed=0) -> pd.DataFrame:
    """Every rater scores every stimulus of two conditions once: N(50, 10²) + optional rater offset."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0, rater_sd, n_raters) if rater_sd else np.zeros(n_raters)
    rows = [(f"r{r:02d}", f"v{i % n_stim:02d}", "A" if i < n_stim else "B")
            for r in range(n_raters) for i in range(2 * n_stim)]
    rater, content, cond = zip(*rows, strict=True)
    r_idx = np.repeat(np.arange(n_raters), 2 * n_stim)
    score = np.clip(np.round(50 + offset[r_idx] + rng.normal(0, 10, len(rows))), 0, 100)
    return ratings_frame(rater, content, cond, score, method="slider100")


# --------------------------------------------------------------------------- MOS, t intervals


def test_t_interval_equals_scipy_on_a_hand_example():
    scores_a, scores_b = [4, 5, 3, 4, 4, 2], [1, 2, 2, 3, 1, 2]
    df = ratings_frame(list("uvwxyz") * 2, ["v1"] * 12, ["A"] * 6 + ["B"] * 6, scores_a + scores_b)
    # One score per rater and condition: the rater-clustered default *is* the Student-t interval.
    for ci in ("t", "cluster"):
        table = mos(df, ci=ci).to_frame().set_index("cond")
        assert (table["ci_method"] == ci).all()
        for cond, scores in (("A", scores_a), ("B", scores_b)):
            x = np.asarray(scores, dtype=float)
            low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
            row = table.loc[cond]
            assert row["mos"] == pytest.approx(x.mean())
            assert row["sd"] == pytest.approx(x.std(ddof=1))
            assert row["n"] == 6 and row["n_raters"] == 6
            assert row["se"] == pytest.approx(stats.sem(x))
            assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)
    assert mos(df).params["ci"] == "cluster"
    assert list(mos(df).to_frame().columns) == ["cond", "mos", "sd", "n", "n_raters", "se", "ci_low", "ci_high",
                                                "ci_method"]


def test_mos_per_content_and_condition():
    df = ratings_frame(["a", "b", "a", "b", "a", "b"], ["v1", "v1", "v2", "v2", "v1", "v1"],
                       ["A", "A", "A", "A", "B", "B"], [5, 3, 2, 2, 1, 2])
    table = mos(df, by=("content", "cond")).to_frame()
    assert table[["content", "cond"]].values.tolist() == [["v1", "A"], ["v1", "B"], ["v2", "A"]]
    assert table["mos"].tolist() == [4.0, 1.5, 2.0]
    assert mos(df, by=("content", "cond")).params["by"] == ("content", "cond")


def test_single_score_has_no_interval():
    table = mos(ratings_frame(["a"], ["v"], ["A"], [3])).to_frame()
    assert table["n"].iloc[0] == 1 and np.isnan(table["ci_low"].iloc[0])


def test_repeats_and_gold_rows_are_left_out():
    df = ratings_frame(["a", "b", "a", "a"], ["v1", "v1", "v1", "g"], ["A", "A", "A", "GOLD"], [4, 2, 5, 3])
    df.loc[2, "repeat_of"] = 1
    df.loc[3, "gold_expected"] = 3
    table = mos(df).to_frame()
    assert table["cond"].tolist() == ["A"] and table["mos"].tolist() == [3.0] and table["n"].tolist() == [2]


def test_normalisation_choice():
    df = ratings_frame(["a"] * 2 + ["b"] * 2, ["v1", "v2"] * 2, ["A", "B"] * 2, [2, 4, 1, 5])
    assert mos(df, normalize="minmax").to_frame()["mos"].tolist() == [0.0, 100.0]
    z = mos(df, normalize="zscore").to_frame()["mos"].to_numpy()
    np.testing.assert_allclose(z, [-np.sqrt(0.5), np.sqrt(0.5)])
    assert mos(df, normalize="zscore").params["normalize"] == "zscore"
    with pytest.raises(ValueError, match="normalize"):
        mos(df, normalize="rank")


# --------------------------------------------------------------------------- bootstrap over raters


def test_bootstrap_is_close_to_t_on_independent_normal_scores():
    panel = normal_panel()
    table = mos(panel, ci="t").to_frame()
    boot = mos(panel, ci="bootstrap", n_boot=2000, seed=1).to_frame()
    cluster = mos(panel).to_frame()
    t_width = table["ci_high"] - table["ci_low"]
    b_width = boot["ci_high"] - boot["ci_low"]
    # Both rater-level methods estimate the variance from 40 rater totals (relative sd of the
    # se ≈ 1/√78 ≈ 11%) and use t(39) where Student-t over 1200 scores is nearly z.
    assert ((b_width / t_width).between(0.7, 1.3)).all()
    centre = (boot["ci_high"] + boot["ci_low"]) / 2
    assert (np.abs(centre - table["mos"]) < 0.1 * t_width).all()
    t_se = table["sd"] / np.sqrt(table["n"])
    np.testing.assert_allclose(table["se"], t_se)
    assert ((boot["se"] / t_se).between(0.7, 1.3)).all()
    # Independent scores: the rater-clustered default agrees with both, with the same noise.
    assert (((cluster["ci_high"] - cluster["ci_low"]) / t_width).between(0.7, 1.3)).all()
    assert ((cluster["se"] / t_se).between(0.7, 1.3)).all()
    # The two rater-level methods see the same rater totals: they agree closely.
    assert ((boot["se"] / cluster["se"]).between(0.9, 1.1)).all()


def test_bootstrap_widens_when_raters_disagree_systematically():
    """Rater offsets correlate a rater's scores; the t interval ignores that, the rater bootstrap does not."""
    panel = normal_panel(rater_sd=8.0, seed=2)
    t = mos(panel, ci="t").to_frame()
    boot = mos(panel, ci="bootstrap", n_boot=1000).to_frame()
    ratio = (boot["ci_high"] - boot["ci_low"]) / (t["ci_high"] - t["ci_low"])
    assert (ratio > 2.0).all()
    # So does the rater-clustered default.
    cluster = mos(panel).to_frame()
    assert ((cluster["ci_high"] - cluster["ci_low"]) / (t["ci_high"] - t["ci_low"]) > 2.0).all()


def test_bootstrap_only_and_reproducibility():
    df = normal_panel(n_raters=12, n_stim=5)
    boot = mos(df, ci="bootstrap", n_boot=500, seed=7).to_frame()
    assert "boot_ci_low" not in boot.columns and (boot["ci_method"] == "bootstrap").all()
    again = mos(df, ci="bootstrap", n_boot=500, seed=7).to_frame()
    pd.testing.assert_frame_equal(boot, again)
    # The bootstrap interval is the percentile interval of the rater-resampled means.
    se, low, high = rater_bootstrap(*_sums_counts(df), n_boot=500, seed=7)
    np.testing.assert_allclose(boot["ci_low"], low)
    np.testing.assert_allclose(boot["ci_high"], high)
    np.testing.assert_allclose(boot["se"], se)
    assert not np.allclose(mos(df, ci="bootstrap", n_boot=500, seed=8).to_frame()["ci_low"], boot["ci_low"])
    for bad in ("wald", "both"):
        with pytest.raises(ValueError, match="ci must be"):
            mos(df, ci=bad)


def test_vectorised_bootstrap_equals_explicit_resampling():
    rng = np.random.default_rng(0)
    sums = rng.integers(0, 20, (5, 3)).astype(float)
    counts = rng.integers(1, 4, (5, 3)).astype(float)
    se, low, high = rater_bootstrap(sums, counts, n_boot=200, seed=3)
    # Same draws, done the slow way: G − 1 = 4 of the 5 raters drawn with replacement
    # (analysis.resample), list them and pool their sums and counts.
    weights = np.random.default_rng(3).multinomial(4, np.full(5, 0.2), size=200)
    means = []
    for w in weights:
        drawn = np.repeat(np.arange(5), w)
        means.append(sums[drawn].sum(axis=0) / counts[drawn].sum(axis=0))
    means = np.array(means)
    # Expanded percentile interval: percentiles at Φ(±t(0.975, G − 1)) for G = 5 raters.
    p = stats.norm.cdf(stats.t.ppf(0.975, 4))
    np.testing.assert_allclose(low, np.quantile(means, 1 - p, axis=0))
    np.testing.assert_allclose(high, np.quantile(means, p, axis=0))
    np.testing.assert_allclose(se, means.std(axis=0, ddof=1))


# --------------------------------------------------------------------------- DMOS


def test_dmos_hand_example():
    # rater a: REF 5, A 3, B 4 → DV A 3, B 4.   rater b: REF 4, A 3, B 5 → DV A 4, B 6.
    # rater c rated A without the reference: no DV.
    df = ratings_frame(["a", "a", "a", "b", "b", "b", "c"], ["v1"] * 7, ["REF", "A", "B", "REF", "A", "B", "A"],
                       [5, 3, 4, 4, 3, 5, 1], method="acr-hr")
    result = dmos(df, reference="REF")
    table = result.to_frame().set_index("cond")
    assert table.index.tolist() == ["A", "B"]
    assert table.loc["A", "mos"] == 3.5 and table.loc["B", "mos"] == 5.0
    assert table.loc["A", "n"] == 2
    x = np.array([3.0, 4.0])
    low, high = stats.t.interval(0.95, 1, loc=x.mean(), scale=stats.sem(x))
    assert table.loc["A", "ci_low"] == pytest.approx(low) and table.loc["A", "ci_high"] == pytest.approx(high)
    assert result.params["n_unpaired"] == 1 and result.params["reference"] == "REF"
    assert result.kind == "dmos"


def test_dmos_reference_is_per_rater_and_content():
    # The same rater's reference of the *same content* is subtracted; references are averaged.
    df = ratings_frame(["a"] * 5, ["v1", "v1", "v1", "v2", "v2"], ["SRC", "SRC", "A", "SRC", "A"],
                       [5, 4, 3, 2, 2], method="acr-hr", role=["reference", "reference", None, "reference", None])
    table = dmos(df, by=("content", "cond")).to_frame()
    assert table["mos"].tolist() == [3 - 4.5 + 5, 2 - 2 + 5]
    assert dmos(df).params["reference"] == "SRC"


def test_dmos_on_a_simulated_acr_hr_study():
    sim = simulate_ratings(RatingsTruth(6),
                           RatingsPanel(24),
                           RatingsDesign(20, method="acr-hr", repeats_per_rater=2, gold_per_rater=2),
                           seed=5)
    result = dmos(sim.votes, reference=sim.params["reference"], ci="bootstrap", n_boot=300)
    table = result.to_frame().set_index("cond")
    truth = sim.truth.set_index("condition")["score"].drop(sim.params["reference"])
    assert stats.spearmanr(table.loc[truth.index, "mos"], truth).statistic > 0.9
    assert result.params["n_unpaired"] == 0
    assert (table["ci_method"] == "bootstrap").all()
    assert (table["ci_low"] < table["mos"]).all() and (table["mos"] < table["ci_high"]).all()
    default = dmos(sim.votes, reference=sim.params["reference"]).to_frame().set_index("cond")
    assert (default["ci_method"] == "cluster").all()
    assert (default["ci_low"] < default["mos"]).all() and (default["mos"] < default["ci_high"]).all()


def test_dmos_needs_a_reference_and_an_acr_scale():
    df = ratings_frame(["a", "a"], ["v1", "v1"], ["REF", "A"], [5, 3], method="acr-hr")
    with pytest.raises(ValueError, match="hidden reference"):
        dmos(df)
    with pytest.raises(ValueError, match="no ratings"):
        dmos(df, reference="SOURCE")
    with pytest.raises(frames.FrameError, match="DMOS"):
        dmos(df.assign(method="slider100"), reference="REF")


# --------------------------------------------------------------------------- bad input


def test_bad_input():
    with pytest.raises(frames.FrameError):
        mos(pd.DataFrame({"rater": ["a"], "cond": ["A"], "score": [3]}))
    pairwise = pd.DataFrame({
        "study": ["s"], "rater": ["a"], "session": ["a-1"], "trial": [1], "content": ["v"], "cond_a": ["A"],
        "cond_b": ["B"], "pref": [1], "method": ["pc5"], "reason": [None], "shown_left": ["a"], "repeat_of": [None],
        "gold_expected": [None], "answered_at": [None], "watch_ms": [1], "stalls": [0],
    })
    with pytest.raises(frames.FrameError, match="ratings frame"):
        mos(pairwise)
    mixed = ratings_frame(["a", "b"], ["v", "v"], ["A", "A"], [3, 40]).assign(method=["acr5", "slider100"])
    with pytest.raises(frames.FrameError, match="several scales"):
        mos(mixed)
    # Normalised per rater, scores from different scales can be averaged.
    two = ratings_frame(["a", "a", "b", "b"], ["v"] * 4, ["A", "B"] * 2, [1, 5, 0, 100])
    two["method"] = ["acr5", "acr5", "slider100", "slider100"]
    assert mos(two, normalize="minmax").to_frame()["mos"].tolist() == [0.0, 100.0]
    with pytest.raises(ValueError, match="by must be"):
        mos(ratings_frame(["a"], ["v"], ["A"], [3]), by=("rater",))


def test_bootstrap_covariance_carries_the_shared_raters():
    """Rater offsets move a rater's A and B scores together: the bootstrap covariance sees it."""
    df = normal_panel(rater_sd=8.0, seed=4)
    res = mos(df, ci="bootstrap", n_boot=800, seed=2, keep_cov=True)
    cov = res.covariance()
    assert cov.shape == (2, 2)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), res.table["se"], rtol=1e-12)
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert corr > 0.8
    se, _, _ = rater_bootstrap(*_sums_counts(df), n_boot=800, seed=2)
    np.testing.assert_allclose(se, res.table["se"])
    # The rater-clustered covariance (the default) carries the same correlation.
    clustered = mos(df, keep_cov=True)
    ccov = clustered.covariance()
    np.testing.assert_allclose(np.sqrt(np.diag(ccov)), clustered.table["se"], rtol=1e-12)
    assert ccov[0, 1] / np.sqrt(ccov[0, 0] * ccov[1, 1]) > 0.8
    # Student-t treats every score as independent: a diagonal covariance.
    t = mos(df, ci="t", keep_cov=True)
    np.testing.assert_allclose(t.covariance(), np.diag(t.table["se"] ** 2))
    with pytest.raises(ValueError, match="keep_cov"):
        mos(df, ci="bootstrap", n_boot=50).covariance()
    with pytest.raises(ValueError, match="keep_cov"):
        mos(df).covariance()


def _sums_counts(df):
    rater = pd.factorize(df["rater"].astype(str))[0]
    group = (df["cond"] == "B").to_numpy(dtype=int)
    sums = np.zeros((rater.max() + 1, 2))
    counts = np.zeros_like(sums)
    np.add.at(sums, (rater, group), df["score"].to_numpy(dtype=float))
    np.add.at(counts, (rater, group), 1.0)
    return sums, counts
