"""Bradley–Terry: agreement with choix, recovery of the truth, intervals, invariances."""

import choix
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import bradley_terry as bt
from analysis import frames, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth
from tests.frame_support import pairwise_frame

SEPARATED = np.linspace(-2.2, 2.2, 12)


_votes = pairwise_frame


@pytest.fixture(scope="module")
def study():
    return simulate.simulate_pairwise(PairwiseTruth(12, true_scores=SEPARATED, tie_rate=0.25),
                                      PairwisePanel(60),
                                      PairwiseDesign(50, 20_000),
                                      seed=11)


def test_tie_free_scores_equal_choix_mle():
    sim = simulate.simulate_pairwise(PairwiseTruth(8, tie_rate=0),
                                     PairwisePanel(20),
                                     PairwiseDesign(10, 1200, method="2afc"),
                                     seed=3)
    res = bt.fit(sim.votes)
    v = sim.votes[sim.votes["repeat_of"].isna()]
    idx = {c: k for k, c in enumerate(res.conditions)}
    data = [(idx[a], idx[b]) if p > 0 else (idx[b], idx[a]) for a, b, p in zip(v.cond_a, v.cond_b, v.pref, strict=True)]
    ref = choix.opt_pairwise(len(idx), data, alpha=1e-12, tol=1e-12)
    np.testing.assert_allclose(res.scores, ref - ref.mean(), atol=1e-6)
    assert res.params["converged"]


@pytest.mark.parametrize("ties", bt.TIE_MODELS)
def test_recovers_the_order_with_every_tie_model(study, ties):
    res = bt.fit(study.votes, ties=ties)
    tau = stats.kendalltau(res.scores, study.truth["score"]).statistic
    assert tau == pytest.approx(1.0)
    frame = res.to_frame()
    assert list(frame.columns) == ["condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes"]
    assert res.ci == "cluster" and (frame["ci_method"] == "cluster").all()  # rater-clustered by default
    assert (frame["ci_low"] < frame["score"]).all() and (frame["score"] < frame["ci_high"]).all()
    hessian = res.to_frame("hessian")
    assert (hessian["ci_method"] == "hessian").all()
    assert (hessian["ci_low"] < hessian["score"]).all() and (hessian["score"] < hessian["ci_high"]).all()
    assert frame["n_votes"].sum() == 2 * 20_000
    assert np.isfinite(res.loglik)


def test_rao_kupper_is_unbiased_on_its_own_model(study):
    res = bt.fit(study.votes, ties="rao-kupper")
    z = (res.scores - study.truth["score"].to_numpy()) / res.se
    assert np.abs(z).max() < 4
    assert res.params["eta"] == pytest.approx(study.params["thresholds"][0], abs=0.05)


def test_tie_parameters_are_reported(study):
    assert bt.fit(study.votes, ties="davidson").params["nu"] > 0
    assert bt.fit(study.votes, ties="rao-kupper").params["theta"] > 1
    split = bt.fit(study.votes, ties="split")
    assert split.params["fitted_model"] == "bt"


def test_graded_counts_strength_and_split_halves_ties():
    rows = [("r1", "A", "B", 2), ("r1", "A", "B", 1), ("r2", "B", "A", 2), ("r2", "A", "B", 0),
            ("r3", "B", "A", -1), ("r3", "A", "B", -1)]
    plain = bt.count_votes(_votes(rows)).pairs
    graded = bt.count_votes(_votes(rows), graded=True).pairs
    assert (plain.wins_i[0], plain.ties[0], plain.wins_j[0]) == (3, 1, 2)
    assert (graded.wins_i[0], graded.ties[0], graded.wins_j[0]) == (4, 1, 3)
    split = bt.fit(_votes(rows), ties="split")
    # 3.5 vs 2.5 wins: the BT difference is log(3.5/2.5).
    assert split.scores[0] - split.scores[1] == pytest.approx(np.log(3.5 / 2.5))


def test_fit_counts_matches_fit_and_accepts_sparse(study):
    # Counts have no rater ids: fit_counts gives the Hessian interval, as fit(ci="hessian") does.
    res = bt.fit(study.votes, ties="rao-kupper", ci="hessian")
    pc = bt.count_votes(study.votes).pairs
    wins, ties = pc.matrices()
    from scipy import sparse

    for w in (wins, sparse.csr_array(wins)):
        again = bt.fit_counts(pc.conditions, w, ties, tie_model="rao-kupper")
        np.testing.assert_allclose(again.scores, res.scores, atol=1e-10)
        np.testing.assert_allclose(again.se, res.se, rtol=1e-8)
        assert again.ci == "hessian" and again.cluster_cov is None
    np.testing.assert_allclose(bt.fit(study.votes, ties="rao-kupper").intervals("hessian")[0], res.se, rtol=1e-12)
    for ci in ("bootstrap", "cluster"):
        with pytest.raises(ValueError, match="per-vote rows"):
            bt.fit_counts(pc.conditions, wins, ties, ci=ci)


def test_sparse_solver_agrees_with_dense():
    sim = simulate.simulate_pairwise(PairwiseTruth(40, tie_rate=0.2),
                                     PairwisePanel(30),
                                     PairwiseDesign(10, 6000),
                                     seed=5)
    dense = bt.fit(sim.votes, sparse_solver=False, ci="hessian")
    sp = bt.fit(sim.votes, sparse_solver=True, ci="hessian")
    assert sp.params["solver"] == "sparse-cg"
    np.testing.assert_allclose(sp.scores, dense.scores, atol=1e-8)
    np.testing.assert_allclose(sp.se, dense.se, rtol=1e-6)


def test_anchor_and_elo(study):
    base = bt.fit(study.votes)
    anch = bt.fit(study.votes, anchor="C01")
    assert anch.scores[0] == 0 and anch.se[0] == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(anch.scores, base.scores - base.scores[0], atol=1e-12)
    # Differences (and their variances) do not depend on the anchoring.
    d = np.array([1, -1] + [0] * 10)
    assert d @ anch.cov @ d == pytest.approx(d @ base.cov @ d)
    elo = bt.fit(study.votes, elo=True)
    np.testing.assert_allclose(elo.scores, 1500 + 400 / np.log(10) * base.scores)
    np.testing.assert_allclose(elo.se, 400 / np.log(10) * base.se)
    with pytest.raises(ValueError, match="anchor"):
        bt.fit(study.votes, anchor="nope")


def test_bootstrap_columns_seed_and_width(study):
    a = bt.fit(study.votes, ci="bootstrap", n_boot=300, seed=4)
    b = bt.fit(study.votes, ci="bootstrap", n_boot=300, seed=4)
    np.testing.assert_array_equal(a.boot, b.boot)
    assert a.ci == "bootstrap" and a.boot.shape == (300, 12)
    frame = a.to_frame()
    assert list(frame.columns) == ["condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes"]
    assert (frame["ci_method"] == "bootstrap").all()
    pd.testing.assert_frame_equal(a.to_frame("bootstrap"), frame)
    # Honest raters without personal noise: the cluster bootstrap agrees with the Hessian
    # and with the rater-clustered sandwich.
    hessian, cluster = a.to_frame("hessian"), a.to_frame("cluster")
    np.testing.assert_allclose(frame["se"], hessian["se"], rtol=0.25)
    np.testing.assert_allclose(frame["se"], cluster["se"], rtol=0.25)
    # The Hessian and clustered intervals of a bootstrap fit are those of a fit by that method.
    np.testing.assert_allclose(bt.fit(study.votes, ci="hessian").se, hessian["se"], rtol=1e-12)
    np.testing.assert_allclose(bt.fit(study.votes).se, cluster["se"], rtol=1e-12)
    assert a.params["boot_failed"] == 0 and a.params["boot_refused"] is None
    assert not np.allclose(bt.fit(study.votes, ci="bootstrap", n_boot=300, seed=5).ci_low, a.ci_low)


def test_bootstrap_widens_when_raters_disagree():
    sim = simulate.simulate_pairwise(PairwiseTruth(6, true_scores=np.linspace(-1, 1, 6)),
                                     PairwisePanel(30, rater_noise=0.6),
                                     PairwiseDesign(10, 6000),
                                     seed=2)
    res = bt.fit(sim.votes, ci="bootstrap", n_boot=300, seed=1)
    hessian = res.intervals("hessian")[0]
    assert (res.se > 1.5 * hessian).all()
    # The default rater-clustered interval sees the same disagreement.
    assert (res.intervals("cluster")[0] > 1.5 * hessian).all()
    np.testing.assert_allclose(res.intervals("cluster")[0], res.se, rtol=0.3)


def test_disconnected_graph_names_the_components():
    sim = simulate.simulate_pairwise(PairwiseTruth(4),
                                     PairwisePanel(10),
                                     PairwiseDesign(5, 400, pairs=[("C01", "C02"), ("C03", "C04")]),
                                     seed=1)
    with pytest.raises(bt.DisconnectedError) as info:
        bt.fit(sim.votes)
    assert sorted(map(sorted, info.value.components)) == [["C01", "C02"], ["C03", "C04"]]
    assert "C01, C02" in str(info.value)


def test_a_condition_that_never_loses_has_no_finite_score():
    rows = [("r1", "A", "B", 1), ("r1", "B", "C", 1), ("r2", "C", "B", 1), ("r2", "A", "C", 2)]
    with pytest.raises(bt.SeparationError) as info:
        bt.fit(_votes(rows), ties="split")
    assert ["A"] in info.value.components


def test_fit_by_reason_splits_multi_values():
    sim = simulate.simulate_pairwise(PairwiseTruth(5),
                                     PairwisePanel(30),
                                     PairwiseDesign(10, 6000, reason_rate=0.5),
                                     seed=6)
    both = sim.votes["reason"].fillna("").str.contains(";")
    assert both.any()
    fits = bt.fit_by_reason(sim.votes)
    assert list(fits) == sorted(simulate.DEFAULT_REASONS)
    colours = sim.votes["reason"].fillna("").str.split(";").map(lambda r: "colours" in r)
    assert fits["colours"].n_votes.sum() == 2 * colours[sim.votes["repeat_of"].isna()].sum()
    only = bt.fit_by_reason(sim.votes, reasons=["brightness"], ties="split")
    assert list(only) == ["brightness"]
    with pytest.raises(ValueError, match="no votes give"):
        bt.fit_by_reason(sim.votes, reasons=["sound"])


def test_fit_by_reason_can_skip_and_record_a_factor_it_cannot_fit():
    sim = simulate.simulate_pairwise(PairwiseTruth(4),
                                     PairwisePanel(8),
                                     PairwiseDesign(5, 600, reason_rate=0.0),
                                     seed=4)
    votes = sim.votes.copy()
    votes.loc[votes.index[:2], "reason"] = "rare"                # 2 votes cannot determine 4 scores
    votes.loc[votes.index[2:], "reason"] = "colours"
    with pytest.raises(bt.ComparisonGraphError, match="reason 'rare'"):
        bt.fit_by_reason(votes)
    failures: dict[str, str] = {}
    fits = bt.fit_by_reason(votes, reasons=["colours", "rare", "sound"], on_error="skip", failures=failures)
    assert list(fits) == ["colours"]
    assert set(failures) == {"rare", "sound"} and "no votes give" in failures["sound"]
    assert bt.present_reasons(votes) == ["colours", "rare"]
    with pytest.raises(ValueError, match="on_error"):
        bt.fit_by_reason(votes, on_error="ignore")
    with pytest.raises(ValueError, match="ties must be"):             # a bad option is never skipped
        bt.fit_by_reason(votes, on_error="skip", ties="bogus")


def test_bad_frame_lists_every_problem():
    df = _votes([("r1", "A", "B", 1)]).drop(columns=["method"])
    df.loc[0, "pref"] = 7
    with pytest.raises(frames.FrameError) as info:
        bt.fit(df.assign(cond_b="A"))
    assert len(info.value.problems) >= 2


def test_gold_and_repeats_are_left_out():
    sim = simulate.simulate_pairwise(PairwiseTruth(4),
                                     PairwisePanel(10),
                                     PairwiseDesign(5, 1000, repeats_per_rater=5, gold_per_rater=3),
                                     seed=2)
    res = bt.fit(sim.votes)
    assert set(res.conditions) == {"C01", "C02", "C03", "C04"}
    assert res.n_votes.sum() == 2 * 1000


# ---------------------------------------------------------------------- invariances

_FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_relabelling_conditions_permutes_the_output(seed, perm_seed):
    sim = simulate.simulate_pairwise(PairwiseTruth(5, true_scores=np.linspace(-1, 1, 5)),
                                     PairwisePanel(10),
                                     PairwiseDesign(5, 800),
                                     seed=seed)
    names = [f"C{i:02d}" for i in range(1, 6)]
    new = dict(zip(names, np.random.default_rng(perm_seed).permutation(["q", "w", "e", "r", "t"]), strict=True))
    relabelled = sim.votes.assign(cond_a=sim.votes["cond_a"].map(new), cond_b=sim.votes["cond_b"].map(new))
    a = bt.fit(sim.votes).to_frame().set_index("condition")
    b = bt.fit(relabelled).to_frame().set_index("condition")
    b.index = b.index.map({v: k for k, v in new.items()})
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index(), atol=1e-9, rtol=1e-9)


@_FAST
@given(seed=st.integers(0, 10_000), ties=st.sampled_from(bt.TIE_MODELS), flip=st.floats(0.1, 1.0))
def test_swapping_sides_with_negated_pref_changes_nothing(seed, ties, flip):
    sim = simulate.simulate_pairwise(PairwiseTruth(5), PairwisePanel(10), PairwiseDesign(5, 800), seed=seed)
    v = sim.votes
    swap = np.random.default_rng(seed).random(len(v)) < flip
    w = v.copy()
    w.loc[swap, "cond_a"], w.loc[swap, "cond_b"] = v.loc[swap, "cond_b"], v.loc[swap, "cond_a"]
    w.loc[swap, "pref"] = -v.loc[swap, "pref"]
    a, b = bt.fit(v, ties=ties), bt.fit(w, ties=ties)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-9)
    np.testing.assert_allclose(a.se, b.se, rtol=1e-9)


@_FAST
@given(seed=st.integers(0, 10_000), ties=st.sampled_from(bt.TIE_MODELS))
def test_duplicating_every_rater_narrows_hessian_intervals_by_sqrt2(seed, ties):
    sim = simulate.simulate_pairwise(PairwiseTruth(5), PairwisePanel(10), PairwiseDesign(5, 800), seed=seed)
    v = sim.votes
    dup = v.assign(rater=v["rater"] + "-twin", session=v["session"] + "-twin")
    a = bt.fit(v, ties=ties, ci="hessian")
    b = bt.fit(pd.concat([v, dup], ignore_index=True), ties=ties, ci="hessian")
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-9)
    np.testing.assert_allclose(a.se / b.se, np.sqrt(2), rtol=1e-7)
    width_a, width_b = a.ci_high - a.ci_low, b.ci_high - b.ci_low
    np.testing.assert_allclose(width_a / width_b, np.sqrt(2), rtol=1e-7)


# ---------------------------------------------------------------------- coverage


@pytest.mark.slow
def test_hessian_cluster_and_bootstrap_intervals_cover_95_percent():
    """400 small tie-free studies (fixed seeds), 6 conditions each → 2,400 intervals per method.

    Small studies keep it cheap (most time is frame validation); 80 raters × 25 votes so
    the cluster bootstrap's (R−1)/R variance shrinkage is negligible; 400 rounds keep the
    percentile noise small; no rater noise, so votes are independent and all methods
    target the same variance. 2afc data: every tie model is plain BT, so the true
    centred scores are the estimand. The rater-clustered interval (the default) is checked too.
    """
    truth = np.linspace(-1, 1, 6)
    hit_h, hit_b, hit_c = [], [], []
    for seed in range(400):
        sim = simulate.simulate_pairwise(PairwiseTruth(6, true_scores=truth, tie_rate=0),
                                         PairwisePanel(80),
                                         PairwiseDesign(20, 2000, method="2afc"),
                                         seed=seed)
        res = bt.fit(sim.votes, ci="bootstrap", n_boot=400, seed=seed)
        true = sim.truth["score"].to_numpy()
        _, lo, hi = res.intervals("hessian")
        hit_h.append((lo <= true) & (true <= hi))
        _, lo, hi = res.intervals("bootstrap")
        hit_b.append((lo <= true) & (true <= hi))
        _, lo, hi = res.intervals("cluster")
        hit_c.append((lo <= true) & (true <= hi))
    assert 0.93 <= np.mean(hit_h) <= 0.97
    assert 0.93 <= np.mean(hit_b) <= 0.97
    assert 0.93 <= np.mean(hit_c) <= 0.97
