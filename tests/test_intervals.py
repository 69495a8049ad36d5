"""Intervals on the inputs that once broke them (shared/cases), and what the rater-clustered one is.

Every expected value here is derived in the test (closed forms, binomial counts, an independent sandwich
computed with numpy), not copied from the output it checks.
"""

from __future__ import annotations

import io
import warnings

import choix
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from analysis import bradley_terry as bt
from analysis import datasets, frames, mos, report, resample, simulate
from analysis.screening import ScreeningRules
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth
from tests.frame_support import pairwise_frame
from tests.shared_data import CASES, DATA


def _case(*parts: str) -> pd.DataFrame:
    return frames.read_votes(CASES.joinpath(*parts))


def _draws(n_raters: int) -> int:
    """Raters drawn per round by every rater bootstrap (see analysis.resample)."""
    return int(resample.rater_weights(n_raters, 1, 0).sum())


def _binomial_band(n: int, p: float, k: float = 4.0) -> tuple[float, float]:
    sd = np.sqrt(n * p * (1 - p))
    return n * p - k * sd - 0.5, n * p + k * sd + 0.5


def _pairwise(rows, method: str = "2afc") -> pd.DataFrame:
    """A valid pairwise frame from (rater, cond_a, cond_b, pref) tuples."""
    return pairwise_frame(rows, method)


def _renamed_copies(votes: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` copies of every vote, each copy under new rater ids (k times the raters, same answers)."""
    return pd.concat([votes.assign(rater=votes["rater"] + f"-{c}", session=votes["session"] + f"-{c}")
                      for c in range(k)], ignore_index=True)


# ----------------------------------------------------------------------------------------
# Rater bootstrap on separated resamples (bootstrap-separation/)
# ----------------------------------------------------------------------------------------


def test_two_raters_who_disagree_get_no_bootstrap_interval():
    """r1 A>B, r2 B>A: a resample that misses one rater has no finite MLE. Such rounds are counted, not
    kept at ±18.6, and with that many of them the bootstrap is refused for the clustered interval."""
    votes = _case("bootstrap-separation", "two_raters.csv")
    with pytest.warns(UserWarning, match="rater bootstrap refused"):
        res = bt.fit(votes, ci="bootstrap", n_boot=200, seed=0)
    # A round is separated when every drawn rater is the same one: P = 2·(1/2)^draws.
    p_separated = 2 * 0.5 ** _draws(2)
    low, high = _binomial_band(200, p_separated)
    assert low <= res.params["boot_failed"] <= high
    assert res.params["boot_failed"] > bt.MAX_BOOT_FAILED * 200
    refused = res.params["boot_refused"]
    assert refused and f"{res.params['boot_failed']} of 200" in refused and "no finite scores" in refused
    assert any("refused" in note for note in res.params["notes"])
    assert res.ci == "cluster" and res.boot is None and res.n_boot == 0
    frame = res.to_frame()
    assert (frame["ci_method"] == "cluster").all()
    pd.testing.assert_frame_equal(frame, bt.fit(votes).to_frame())           # the clustered interval, as is
    with pytest.raises(ValueError, match="no bootstrap intervals"):
        res.intervals("bootstrap")


def test_two_conditions_seven_to_three():
    votes = _case("bootstrap-separation", "two_conditions.csv")
    res = bt.fit(votes, ci="bootstrap", n_boot=1000, seed=0)
    assert res.conditions == ("Model1", "Model2") and res.ci == "bootstrap"
    d = np.array([1.0, -1.0])
    assert d @ res.scores == pytest.approx(np.log(7 / 3), abs=1e-6)
    # Hessian variance of the log-odds of a 7–3 split: 1/7 + 1/3.
    se_hessian = np.sqrt(d @ res.covariance("hessian") @ d)
    assert se_hessian == pytest.approx(np.sqrt(1 / 7 + 1 / 3), abs=1e-9)
    assert se_hessian == pytest.approx(0.6901, abs=1e-3)
    # Separated rounds: every drawn rater on one side, 0.7^k + 0.3^k (≈ 2.8% for k = 10, 4.0% for k = 9).
    k = _draws(10)
    failed = res.params["boot_failed"]
    assert 0.01 * 1000 <= failed <= 0.05 * 1000
    low, high = _binomial_band(1000, 0.7**k + 0.3**k)
    assert low <= failed <= high
    assert res.params["boot_refused"] is None and len(res.boot) == 1000 - failed
    se_boot = np.sqrt(d @ res.covariance("bootstrap") @ d)
    assert 0.8 <= se_boot / se_hessian <= 1.2
    frame = res.to_frame()
    bounds = frame[["ci_low", "ci_high"]].to_numpy()
    assert np.isfinite(bounds).all() and (np.abs(bounds) < 3).all()
    assert (frame["ci_low"] < frame["score"]).all() and (frame["score"] < frame["ci_high"]).all()


@pytest.fixture(scope="module")
def weak():
    return _case("bootstrap-separation", "weak_condition.csv")


def test_weak_condition_bootstrap_interval(weak):
    """30 raters; F wins 3 times. Rounds that draw none of F's winners are separated and left out."""
    res = bt.fit(weak, ci="bootstrap", n_boot=1000, seed=0)
    assert res.ci == "bootstrap" and res.params["boot_refused"] is None
    frame = res.to_frame().set_index("condition")
    assert frame.loc["F", "ci_low"] == pytest.approx(-4.73, abs=0.1)
    assert frame.loc["F", "ci_high"] == pytest.approx(-3.02, abs=0.1)
    f_won = ((weak["cond_a"] == "F") & (weak["pref"] > 0)) | ((weak["cond_b"] == "F") & (weak["pref"] < 0))
    winners = weak.loc[f_won, "rater"].nunique()
    g = weak["rater"].nunique()
    assert (g, winners) == (30, 3)
    # 42 expected when 30 raters are drawn per round, 47 with 29.
    low, high = _binomial_band(1000, ((g - winners) / g) ** _draws(g))
    assert low <= res.params["boot_failed"] <= high
    bounds = frame[["ci_low", "ci_high"]].to_numpy()
    assert np.isfinite(bounds).all() and (np.abs(bounds) < 6).all()


@pytest.mark.parametrize(("ci", "rank_by"), [("bootstrap", "bootstrap"), ("cluster", "cluster")])
def test_weak_condition_is_separated_by_votes(weak, ci, rank_by):
    """E − F = 3.42 with se ≈ 0.5: E and F are separated by the votes, whatever the interval method."""
    res = report.analyze(weak, report.AnalysisOptions(ci=ci, bootstrap=1000, screening_rules=ScreeningRules.none()))
    assert res.params["rank_by"] == rank_by
    table = res.ranking.table
    assert list(table["condition"].iloc[-2:]) == ["E", "F"]
    assert table.set_index("condition").loc["F", "separated_by"] == "votes"
    adjacent = res.ranking.adjacent.set_index("pair")
    assert adjacent.loc["E > F", "separated_by"] == "votes"
    assert not (res.unresolved["lower"] == "F").any()
    scores = res.scores.set_index("condition")
    assert np.isfinite(scores[["ci_low", "ci_high"]].to_numpy()).all()


# ----------------------------------------------------------------------------------------
# One rater (one-rater-bootstrap/): no rater-level interval, never a zero-width one
# ----------------------------------------------------------------------------------------


def test_one_rater_pairwise_has_no_rater_level_interval():
    votes = _case("one-rater-bootstrap", "pairs_one_rater.csv")
    assert votes["rater"].nunique() == 1
    cluster = bt.fit(votes)
    with pytest.warns(UserWarning, match="rater bootstrap refused"):
        boot = bt.fit(votes, ci="bootstrap", n_boot=200, seed=0)
    assert "at least 2" in boot.params["boot_refused"] and boot.boot is None
    for res in (cluster, boot):
        frame = res.to_frame()
        assert res.ci == "cluster" and frame[["se", "ci_low", "ci_high"]].isna().all().all()
        assert any("at least 2 raters" in note for note in res.params["notes"])
    hessian = bt.fit(votes, ci="hessian").to_frame()
    assert np.isfinite(hessian[["se", "ci_low", "ci_high"]].to_numpy()).all()
    assert (hessian["ci_high"] - hessian["ci_low"] > 0).all()


@pytest.mark.parametrize("name", ["pairs_one_rater.csv", "ratings_one_rater.csv"])
def test_one_rater_ranking_separates_nothing(name):
    # Unknown (NaN) standard errors are no evidence: the ranking must not claim "votes" separations.
    res = report.analyze(_case("one-rater-bootstrap", name),
                         report.AnalysisOptions(screening_rules=ScreeningRules.none()))
    table = report.ranking_frame(res)
    assert (table["separated_by"].iloc[1:] == "unresolved").all()
    assert (table["rank"] == 1).all() and (table["rank_low"] == 1).all()
    assert (table["rank_high"] == len(table)).all()


def test_one_rater_ratings_have_no_rater_level_interval():
    votes = _case("one-rater-bootstrap", "ratings_one_rater.csv")
    for ci in ("cluster", "bootstrap"):
        res = mos.mos(votes, ci=ci, n_boot=200)
        table = res.table
        assert (table["n_raters"] == 1).all() and (table["ci_method"] == ci).all()
        assert table[["se", "ci_low", "ci_high"]].isna().all().all()
        assert any("fewer than 2 raters" in note for note in res.params["notes"])
    t = mos.mos(votes, ci="t").table
    assert np.isfinite(t[["se", "ci_low", "ci_high"]].to_numpy()).all()
    assert (t["ci_high"] - t["ci_low"] > 0).all()


# ----------------------------------------------------------------------------------------
# Only ties (all-ties/)
# ----------------------------------------------------------------------------------------


def test_all_ties_split_gives_equal_scores_and_intervals_that_shrink_with_votes():
    votes = _case("all-ties", "votes.csv")
    assert (votes["pref"] == 0).all()
    res = bt.fit(votes, ties="split")
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)
    frame = res.to_frame()
    assert (frame["ci_method"] == "cluster").all()
    assert np.isfinite(frame["se"]).all() and (frame["ci_high"] - frame["ci_low"] > 0).all()
    more = bt.fit(_renamed_copies(votes, 4), ties="split")
    np.testing.assert_allclose(more.scores, 0.0, atol=1e-12)
    # Four times the votes: half the standard error (as the Hessian says), and a narrower interval.
    np.testing.assert_allclose(res.se / more.se, 2.0, rtol=1e-6)
    assert ((more.ci_high - more.ci_low) < (res.ci_high - res.ci_low)).all()
    with pytest.warns(UserWarning, match="rater bootstrap refused"):
        boot = bt.fit(votes, ties="split", ci="bootstrap", n_boot=200, seed=0)
    assert boot.params["boot_refused"] and "same score in every resampled panel" in boot.params["boot_refused"]
    assert boot.ci == "cluster" and boot.boot is None
    assert (boot.ci_high - boot.ci_low > 0).all()                               # never [0, 0]


# ----------------------------------------------------------------------------------------
# fit_counts: a tie matrix symmetric up to rounding counts every tie once
# ----------------------------------------------------------------------------------------


def _tie_matrices(seed: int = 0):
    rng = np.random.default_rng(seed)
    names = ["A", "B", "C", "D", "E"]
    n = len(names)
    wins = rng.integers(3, 15, (n, n)).astype(float)
    np.fill_diagonal(wins, 0.0)
    upper = np.triu(rng.integers(1, 9, (n, n)) / 2 + rng.random((n, n)) / 3, k=1)   # halves, plus fractions
    return names, wins, upper


def test_fit_counts_counts_ties_once_whatever_the_rounding():
    names, wins, upper = _tie_matrices()
    exact = upper + upper.T
    rng = np.random.default_rng(1)
    noisy = exact * (1 + 1e-15 * rng.standard_normal(exact.shape))
    assert not (noisy == noisy.T).all()
    # Read back from CSV text: the two halves written with different precision.
    text = pd.DataFrame(np.where(np.triu(np.ones_like(exact)) > 0, exact, np.round(exact, 12)))
    from_csv = pd.read_csv(io.StringIO(text.to_csv(index=False, float_format="%.17g"))).to_numpy()
    assert not (from_csv == from_csv.T).all()
    ref = bt.fit_counts(names, wins, exact)
    assert ref.params["fitted_model"] == "davidson"
    for ties in (noisy, from_csv, upper, upper.T):
        again = bt.fit_counts(names, wins, ties)
        np.testing.assert_allclose(again.scores, ref.scores, atol=1e-9)
        assert again.params["nu"] == pytest.approx(ref.params["nu"], rel=1e-9)
    # Counting each tie twice would nearly double ν: the reference is not that.
    doubled = bt.fit_counts(names, wins, 2 * upper)
    assert 1.7 < doubled.params["nu"] / ref.params["nu"] < 2.3
    pc = bt.PairCounts.from_matrices(names, wins, noisy)
    assert pc.ties.sum() == pytest.approx(upper.sum(), rel=1e-12)


def test_fit_counts_refuses_a_tie_matrix_neither_symmetric_nor_triangular():
    names, wins, upper = _tie_matrices()
    ties = upper.copy()
    ties[3, 1] = upper[1, 3] + 2.0                    # a triangle, plus one cell below that disagrees
    with pytest.raises(ValueError, match=r"neither symmetric nor triangular") as info:
        bt.fit_counts(names, wins, ties)
    assert "ties[1, 3]" in str(info.value) and "ties[3, 1]" in str(info.value)
    symmetric = upper + upper.T
    symmetric[1, 3] += 2.0                            # symmetric but for one pair: that pair is named
    with pytest.raises(ValueError, match=r"ties\[1, 3\] = .*ties\[3, 1\] ="):
        bt.fit_counts(names, wins, symmetric)


# ----------------------------------------------------------------------------------------
# Separation messages
# ----------------------------------------------------------------------------------------


def test_separation_with_a_tie_model_does_not_suggest_splitting_ties():
    # A beats everyone; B and C tie and trade wins. Splitting the ties gives the same edges.
    rows = [("r1", "A", "B", 1), ("r1", "A", "C", 1), ("r1", "B", "C", 0), ("r2", "B", "C", 1),
            ("r2", "C", "B", 1), ("r2", "A", "B", 1)]
    votes = _pairwise(rows, method="pc5")
    for ties in ("davidson", "rao-kupper"):
        with pytest.raises(bt.SeparationError) as info:
            bt.fit(votes, ties=ties)
        assert ["A"] in info.value.components
        assert "split" not in str(info.value)
    with pytest.raises(bt.SeparationError) as split:
        bt.fit(votes, ties="split")
    assert sorted(map(sorted, split.value.components)) == sorted(map(sorted, info.value.components))


def test_only_ties_error_points_to_split():
    votes = _case("all-ties", "votes.csv")
    with pytest.raises(bt.SeparationError, match=r"only ties.*ties='split'"):
        bt.fit(votes)
    assert bt.fit(votes, ties="split").params["fitted_model"] == "bt"


# ----------------------------------------------------------------------------------------
# What the rater-clustered interval is
# ----------------------------------------------------------------------------------------


def test_mos_cluster_interval_is_student_t_with_one_score_per_rater_and_condition():
    rng = np.random.default_rng(4)
    rows = []
    for r in range(25):
        for cond in rng.choice(["A", "B", "C", "D"], size=int(rng.integers(1, 5)), replace=False):
            rows.append((f"r{r:02d}", f"v{r % 3}", str(cond), int(rng.integers(1, 6))))
    rater, content, cond, score = zip(*rows, strict=True)
    df = pd.DataFrame({"study": "s", "rater": rater, "session": [f"{x}-1" for x in rater], "content": content,
                       "cond": cond, "score": score, "method": "acr5", "repeat_of": None, "gold_expected": None,
                       "answered_at": None, "watch_ms": 10_000, "stalls": 0})
    df["trial"] = df.groupby("rater").cumcount() + 1
    cluster = mos.mos(df).table
    t = mos.mos(df, ci="t").table
    assert (cluster["n"] == cluster["n_raters"]).all() and (cluster["n"] >= 2).all()
    for col in ("mos", "se", "ci_low", "ci_high"):
        np.testing.assert_allclose(cluster[col], t[col], rtol=0, atol=1e-10)
    np.testing.assert_allclose(t["se"], t["sd"] / np.sqrt(t["n"]), atol=1e-12)


def test_bt_cluster_covariance_with_one_vote_per_rater_is_close_to_hessian():
    sim = simulate.simulate_pairwise(PairwiseTruth(5, tie_rate=0),
                                     PairwisePanel(30),
                                     PairwiseDesign(10, 3000, method="2afc"),
                                     seed=8)
    votes = sim.votes[sim.votes["repeat_of"].isna() & sim.votes["gold_expected"].isna()].reset_index(drop=True)
    votes = votes.assign(rater=[f"u{k:05d}" for k in range(len(votes))])
    votes = votes.assign(session=votes["rater"] + "-s1", trial=1)
    res = bt.fit(votes)
    assert res.n_raters == len(votes)
    assert np.linalg.eigvalsh(res.cluster_cov - res.cov).min() >= -1e-10      # ⪰ Hessian (the floor)
    # One vote per cluster: the robust sandwich estimates the same variance as the information.
    np.testing.assert_allclose(res.intervals("cluster")[0], res.intervals("hessian")[0], rtol=0.1)


def test_bt_sandwich_equals_an_independent_computation():
    """Plain BT (no ties: Davidson falls back to it), 4 conditions, 6 raters who each follow their own
    ranking. The sandwich is computed here from the per-vote scores and a finite-difference Hessian,
    at an MLE found by choix and polished by Newton, in the parametrisation with s_A = 0, then centred.

    The data are picked so that the floor at the Hessian covariance does not bind (checked below), so
    the public ``cluster_cov`` is compared, not the private pre-floor pieces.
    """
    conds = ["A", "B", "C", "D"]
    rng = np.random.default_rng(2)
    rows = []
    for r in range(6):
        order = rng.permutation(4)
        for a in range(4):
            for b in range(a + 1, 4):
                for _ in range(3):
                    a_first = (order[a] < order[b]) == (rng.random() < 0.9)
                    rows.append((f"r{r + 1}", conds[a], conds[b], 1 if a_first else -1))
    res = bt.fit(_pairwise(rows), ties="davidson")
    assert res.params["fitted_model"] == "bt" and res.ci == "cluster"

    idx = {c: k for k, c in enumerate(conds)}
    win = np.array([idx[a] if p > 0 else idx[b] for _, a, b, p in rows])
    lose = np.array([idx[b] if p > 0 else idx[a] for _, a, b, p in rows])
    rater = np.array([int(r[1:]) - 1 for r, *_ in rows])

    def per_vote_scores(theta):
        """d log σ(s_w − s_l) / dθ for each vote, θ = (s_B, s_C, s_D) with s_A = 0."""
        s = np.concatenate([[0.0], theta])
        q = expit(-(s[win] - s[lose]))
        g = np.zeros((len(win), 4))
        g[np.arange(len(win)), win] = q
        g[np.arange(len(win)), lose] = -q
        return g[:, 1:]

    def information(theta, h=1e-5):
        cols = [(per_vote_scores(theta - e).sum(0) - per_vote_scores(theta + e).sum(0)) / (2 * h)
                for e in np.eye(3) * h]
        info = np.column_stack(cols)
        return (info + info.T) / 2

    est = choix.opt_pairwise(4, list(zip(win, lose, strict=True)), alpha=0, tol=1e-12)
    theta = est[1:] - est[0]
    for _ in range(5):
        theta = theta + np.linalg.solve(information(theta), per_vote_scores(theta).sum(0))
    assert np.abs(per_vote_scores(theta).sum(0)).max() < 1e-10
    centred = np.concatenate([[0.0], theta])
    np.testing.assert_allclose(res.scores, centred - centred.mean(), atol=1e-8)

    g_r = np.zeros((6, 3))
    np.add.at(g_r, rater, per_vote_scores(theta))
    inv = np.linalg.inv(information(theta))
    v_anchored = 6 / 5 * inv @ (g_r.T @ g_r) @ inv                     # CR1: G/(G−1)
    embed = np.vstack([np.zeros(3), np.eye(3)])
    centre = np.eye(4) - 1 / 4
    v_cluster = centre @ embed @ v_anchored @ embed.T @ centre
    v_hessian = centre @ embed @ inv @ embed.T @ centre
    np.testing.assert_allclose(res.cov, v_hessian, atol=1e-6)
    assert np.sort(np.linalg.eigvalsh(v_cluster - v_hessian))[1] > 0.01      # the floor does not bind
    np.testing.assert_allclose(res.cluster_cov, v_cluster, atol=1e-6)
    _, lo, hi = res.intervals("cluster")
    q = stats.t.ppf(0.975, 5)
    np.testing.assert_allclose(hi - lo, 2 * q * np.sqrt(np.diag(v_cluster)), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                       # no refusal, no warning
        assert bt.fit(_pairwise(rows), ci="hessian").cluster_cov is None


# ----------------------------------------------------------------------------------------
# Found by a first-time analyst
# ----------------------------------------------------------------------------------------


def test_bootstrap_is_refused_when_one_score_never_varies():
    # rank-outside-rank-interval/: every rater's A–B and B–C votes balance, so B's centred
    # score is 0 in every resampled panel — a [0, 0] "interval" would claim certainty.
    votes = _case("rank-outside-rank-interval", "votes.csv")
    with pytest.warns(UserWarning, match="same score in every resampled panel"):
        res = bt.fit(votes, ci="bootstrap", n_boot=300, seed=0)
    assert res.ci == "cluster" and res.boot is None
    width = res.to_frame()["ci_high"] - res.to_frame()["ci_low"]
    assert (width > 0.3).all()


def test_mos_intervals_stay_on_the_scale_of_real_ratings():
    ratings = datasets.read_ratings_csv(DATA / "real-ratings" / "nflx-public" / "ratings.csv", method="acr5")
    for ci in ("cluster", "t"):
        res = mos.mos(ratings, ci=ci)
        bounds = res.table[["ci_low", "ci_high"]].to_numpy()
        assert bounds.min() >= 1 and bounds.max() <= 5
        assert any("same score from every rater" in note for note in res.params["notes"])


def test_ranking_csv_names_its_interval_method(tmp_path):
    votes = _case("bootstrap-separation", "weak_condition.csv")
    for ci, method in (("cluster", "cluster"), ("model", "hessian")):
        result = report.analyze(votes, report.AnalysisOptions(ci=ci, screening_rules=ScreeningRules.none()))
        report.write_report(result, tmp_path / ci)
        ranking = pd.read_csv(tmp_path / ci / "ranking.csv")
        scores = pd.read_csv(tmp_path / ci / "scores.csv").set_index("condition")
        assert (ranking["ci_method"] == method).all() and (scores["ci_method"] == method).all()
        np.testing.assert_allclose(ranking.set_index("condition")["ci_low"], scores.loc[ranking["condition"], "ci_low"])
