"""Per-subject normalisation and the maximum-likelihood subject model (cross-checked with SUREAL)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import frames
from analysis.normalize import minmax, subject_model, sureal_dataset, zscore
from analysis.screening import main_votes
from analysis.simulate import RatingsDesign, RatingsPanel, RatingsTruth, simulate_ratings


def ratings_frame(rater, content, cond, score, method="slider100") -> pd.DataFrame:
    n = len(score)
    rater = [str(x) for x in rater]
    return pd.DataFrame({
        "study": "s", "rater": rater, "session": [f"{r}-1" for r in rater], "trial": np.arange(1, n + 1),
        "content": list(content), "cond": list(cond), "score": score, "method": method, "repeat_of": None,
        "gold_expected": None, "answered_at": None, "watch_ms": 10_000, "stalls": 0,
    })


def panel(n_stim=120, n_raters=20, keep=1.0, seed=0, v_range=(8.0, 14.0)):
    """Slider ratings from the subject model with raters of similar precision.

    With similar precisions the likelihood has a proper interior maximum, so SUREAL's
    MLE_CO and ours must find the same point. ``keep`` < 1 leaves cells unrated.
    """
    rng = np.random.default_rng(seed)
    q = rng.uniform(25, 75, n_stim)
    b = rng.normal(0, 6, n_raters)
    v = rng.uniform(*v_range, n_raters)
    s, r = (a.ravel() for a in np.meshgrid(np.arange(n_stim), np.arange(n_raters), indexing="ij"))
    rated = rng.random(len(s)) < keep
    s, r = s[rated], r[rated]
    x = np.clip(np.round(q[s] + b[r] + v[r] * rng.standard_normal(len(s))), 0, 100)
    df = ratings_frame([f"r{i:02d}" for i in r], [f"v{i // 6:02d}" for i in s], [f"C{i % 6}" for i in s], x)
    # Per-rater trial numbers keep (session, trial) unique.
    df["trial"] = df.groupby("rater").cumcount() + 1
    return df


def sureal_mle_co(df: pd.DataFrame) -> tuple[dict, list[tuple[str, str]]]:
    """Fit SUREAL's MLE_CO (MaximumLikelihoodEstimationModelContentOblivious) on a ratings frame."""
    from sureal.dataset_reader import RawDatasetReader
    from sureal.subjective_model import MaximumLikelihoodEstimationModelContentOblivious

    ds, keys = sureal_dataset(df)
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        result = MaximumLikelihoodEstimationModelContentOblivious(RawDatasetReader(ds)).run_modeling()
    return result, keys


# --------------------------------------------------------------------------- min-max, z-score


def test_minmax_hand_example():
    df = ratings_frame(["a", "a", "a", "b", "b", "b"], ["v1", "v2", "v3"] * 2, ["C1"] * 6, [10, 30, 50, 20, 20, 70])
    out = minmax(df)
    assert out["score_norm"].tolist() == [0.0, 50.0, 100.0, 0.0, 0.0, 100.0]
    assert list(out.columns[:-1]) == list(frames.validate(df).columns)


def test_minmax_constant_rater():
    df = ratings_frame(["a", "a", "c", "c"], ["v1", "v2"] * 2, ["C1"] * 4, [1, 5, 3, 3], method="acr5")
    assert np.isnan(minmax(df)["score_norm"].iloc[2:]).all()
    assert minmax(df)["score_norm"].iloc[:2].tolist() == [0.0, 100.0]
    assert minmax(df, constant="mid")["score_norm"].iloc[2:].tolist() == [50.0, 50.0]
    with pytest.raises(ValueError, match="single value"):
        minmax(df, constant="raise")


def test_zscore_hand_example():
    # a: mean 3, sd 2 → -1, 0, 1; b: mean 4, sd 1 → -1, 0, 1.
    df = ratings_frame(["a"] * 3 + ["b"] * 3, ["v1", "v2", "v3"] * 2, ["C1"] * 6, [1, 3, 5, 3, 4, 5], "acr5")
    np.testing.assert_allclose(zscore(df)["score_norm"], [-1, 0, 1, -1, 0, 1])
    raw = np.array([1, 3, 5, 3, 4, 5], dtype=float)
    np.testing.assert_allclose(
        zscore(df, rescale=True)["score_norm"], np.array([-1, 0, 1, -1, 0, 1]) * raw.std(ddof=1) + raw.mean()
    )


def test_zscore_constant_and_single_rating():
    df = ratings_frame(["a", "a", "c", "c", "d"], ["v1", "v2", "v1", "v2", "v1"], ["C1"] * 5, [1, 5, 3, 3, 2],
                       method="acr5")
    z = zscore(df)["score_norm"]
    assert np.isnan(z.iloc[2:]).all()
    assert zscore(df, constant="mid")["score_norm"].iloc[2:].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="single value"):
        zscore(df, constant="raise")


def test_normalisation_rejects_bad_frames():
    with pytest.raises(frames.FrameError):
        minmax(pd.DataFrame({"rater": ["a"], "cond": ["C"], "score": [1]}))
    pairwise = pd.DataFrame({c: [None] for c in frames.PAIRWISE_COLUMNS})
    with pytest.raises(frames.FrameError):
        zscore(pairwise)
    with pytest.raises(frames.FrameError, match="outside"):
        subject_model(ratings_frame(["a"], ["v"], ["C"], [7], method="acr5"))


# --------------------------------------------------------------------------- subject model


@pytest.mark.parametrize("keep", [1.0, 0.6], ids=["dense", "sparse"])
def test_subject_model_ml_agrees_with_sureal(keep):
    """variance="ml" is SUREAL's MLE_CO fixed point: agreement to 1e-5 points on a 0–100 scale.

    (SUREAL stops when its damped updates move the qualities by < 1e-8 in norm.)
    """
    df = panel(keep=keep, seed=1)
    ref, keys = sureal_mle_co(df)
    ours = subject_model(df, variance="ml")
    stim = ours.stimuli.set_index(["content", "cond"]).loc[keys]
    raters = ours.raters.set_index("rater").loc[ref["observers"]]
    np.testing.assert_allclose(stim["quality"], ref["quality_scores"], atol=1e-5)
    np.testing.assert_allclose(raters["bias"], ref["observer_bias"], atol=1e-5)
    np.testing.assert_allclose(raters["inconsistency"], ref["observer_inconsistency"], atol=1e-5)
    # SUREAL's quality sd is the diagonal 1/sqrt(Σ 1/v²); ours adds the uncertainty of the biases.
    ratio = stim["se"].to_numpy() / np.asarray(ref["quality_scores_std"])
    assert (ratio >= 1 - 1e-9).all() and ratio.max() < 1.15


def test_subject_model_default_is_close_to_sureal():
    """The default degrees-of-freedom-corrected variances move q by < 0.25 se and v up by < 15%."""
    df = panel(keep=0.6, seed=2)
    ref, keys = sureal_mle_co(df)
    ours = subject_model(df)
    stim = ours.stimuli.set_index(["content", "cond"]).loc[keys]
    raters = ours.raters.set_index("rater").loc[ref["observers"]]
    assert np.max(np.abs(stim["quality"] - ref["quality_scores"]) / stim["se"]) < 0.25
    assert np.max(np.abs(raters["bias"] - ref["observer_bias"])) < 0.1
    ratio = raters["inconsistency"].to_numpy() / np.asarray(ref["observer_inconsistency"])
    assert ratio.min() > 0.99 and ratio.max() < 1.15


def test_subject_model_recovers_simulated_truth():
    # Spreads kept small enough that few scores hit 0 or 100: clipping at the scale ends
    # shrinks the observed spread of the noisiest raters, which no model of this form undoes.
    sim = simulate_ratings(RatingsTruth(12, condition_sd=8, content_sd=4),
                           RatingsPanel(20, rater_bias_sd=4, rater_inconsistency=8),
                           RatingsDesign(50, method="slider100"),
                           seed=21)
    fit = subject_model(main_votes(sim.votes))
    assert fit.converged
    truth = sim.stimuli.set_index(["content", "cond"])["quality"]
    stim = fit.stimuli.set_index(["content", "cond"]).loc[truth.index]
    # Biases are centred in the fit, so the qualities carry the panel's mean bias.
    target = truth.to_numpy() + sim.raters["bias"].mean()
    z = (stim["quality"].to_numpy() - target) / stim["se"].to_numpy()
    assert np.corrcoef(stim["quality"], truth)[0, 1] > 0.98
    assert 0.92 <= np.mean(np.abs(z) < 1.96) <= 0.98  # 600 stimuli: honest 95% intervals
    raters = fit.raters.set_index("rater").loc[sim.raters["rater"].astype(str)]
    true_bias = sim.raters["bias"].to_numpy() - sim.raters["bias"].mean()
    np.testing.assert_allclose(raters["bias"], true_bias, atol=4 * raters["bias_se"].max())
    ratio = raters["inconsistency"].to_numpy() / sim.raters["inconsistency"].to_numpy()
    assert 0.9 < np.median(ratio) < 1.1
    assert np.corrcoef(raters["inconsistency"], sim.raters["inconsistency"])[0, 1] > 0.95
    inside = (raters["inconsistency_ci_low"] <= sim.raters["inconsistency"].to_numpy()) & (
        sim.raters["inconsistency"].to_numpy() <= raters["inconsistency_ci_high"])
    assert inside.mean() >= 0.8


def test_ml_collapses_onto_a_precise_rater_and_the_default_does_not():
    """simulate.py draws per-rater precisions; here one rater is ~4x more precise than the rest."""
    sim = simulate_ratings(RatingsTruth(6), RatingsPanel(25), RatingsDesign(20, method="slider100"), seed=4)
    votes = main_votes(sim.votes)
    precise = str(sim.raters.loc[sim.raters["inconsistency"].idxmin(), "rater"])
    with pytest.warns(RuntimeWarning, match="collapsed"):
        ml = subject_model(votes, variance="ml")
    assert ml.raters.set_index("rater").loc[precise, "inconsistency"] == pytest.approx(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = subject_model(votes)
    true_v = sim.raters.set_index(sim.raters["rater"].astype(str)).loc[precise, "inconsistency"]
    assert fit.raters.set_index("rater").loc[precise, "inconsistency"] == pytest.approx(true_v, rel=0.35)


def test_intervals_match_the_constrained_inverse_of_the_full_information():
    """Brute force: invert the dense (q, b) information with b restricted to sum(b) = 0."""
    df = panel(n_stim=18, n_raters=6, keep=0.7, seed=3)
    df = pd.concat([df, df.iloc[:5].assign(trial=df["trial"].max() + np.arange(1, 6))], ignore_index=True)  # repeats
    fit = subject_model(df)
    stim = fit.stimuli.set_index(["content", "cond"])
    raters = fit.raters.set_index("rater")
    s = stim.index.get_indexer(pd.MultiIndex.from_arrays([df["content"], df["cond"]]))
    r = raters.index.get_indexer(df["rater"])
    n_s, n_r = len(stim), len(raters)
    w = 1.0 / raters["inconsistency"].to_numpy()[r] ** 2
    h = np.zeros((n_s + n_r, n_s + n_r))
    for si, ri, wi in zip(s, r, w, strict=True):
        idx = [si, n_s + ri]
        h[np.ix_(idx, idx)] += wi
    basis = np.linalg.svd(np.ones((1, n_r)))[2][1:].T  # orthonormal basis of {b : sum(b) = 0}
    t = np.block([[np.eye(n_s), np.zeros((n_s, n_r - 1))], [np.zeros((n_r, n_s)), basis]])
    cov = t @ np.linalg.inv(t.T @ h @ t) @ t.T
    np.testing.assert_allclose(stim["se"], np.sqrt(np.diag(cov)[:n_s]), rtol=1e-8)
    np.testing.assert_allclose(raters["bias_se"], np.sqrt(np.diag(cov)[n_s:]), rtol=1e-8)
    np.testing.assert_allclose(stim["ci_high"] - stim["quality"], 1.959963984540054 * stim["se"])


def test_subject_model_result_shape_and_parameters():
    df = panel(n_stim=30, n_raters=8, seed=5)
    fit = subject_model(df)
    assert list(fit.stimuli.columns) == ["content", "cond", "quality", "se", "ci_low", "ci_high", "n"]
    assert list(fit.raters.columns[:2]) == ["rater", "bias"]
    assert abs(fit.raters["bias"].mean()) < 1e-9
    frame = fit.to_frame()
    assert frame.attrs["variance"] == "unbiased" and frame.attrs["converged"]
    assert np.isfinite(fit.log_likelihood) and fit.n_iter >= 1
    with pytest.raises(ValueError, match="variance"):
        subject_model(df, variance="reml")


def test_subject_model_rejects_disconnected_designs_and_mixed_scales():
    df = ratings_frame(["a", "a", "b", "b"], ["v1", "v1", "v2", "v2"], ["C1", "C2", "C1", "C2"], [10, 20, 30, 40])
    with pytest.raises(ValueError, match="disconnected"):
        subject_model(df)
    mixed = ratings_frame(["a", "b"], ["v1", "v1"], ["C1", "C1"], [3, 40]).assign(method=["acr5", "slider100"])
    with pytest.raises(ValueError, match="several scales"):
        subject_model(mixed)
    with pytest.raises(ValueError, match="no ratings"):
        subject_model(ratings_frame([], [], [], []))
