"""Ranking: Holm-corrected tests, contiguous tie groups, tie-breaking, rank intervals."""


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import bradley_terry as bt
from analysis import frames, ranking, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth
from tests.shared_data import CASES


class Scorer:
    """A tie-breaker: fixed objective values."""

    def __init__(self, values, name="vqa", version="1.0"):
        self.values, self.name, self.version = values, name, version

    def __call__(self, conditions):
        return {c: self.values[c] for c in conditions if c in self.values}


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 → monotone max → 0.06
    np.testing.assert_allclose(ranking.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert ranking.holm(np.array([0.9, 0.8])).max() == 1.0


def test_pairwise_tests_use_the_covariance():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    t = ranking.pairwise_tests(["a", "b"], np.array([1.0, 0.0]), cov)
    assert t.loc[0, "se"] == pytest.approx(np.sqrt(0.4))
    assert t.loc[0, "z"] == pytest.approx(1 / np.sqrt(0.4))


def test_groups_are_contiguous_and_separations_labelled():
    names = ["A", "B", "C", "D", "E"]
    scores = np.array([3.0, 2.95, 1.0, 0.96, -5.0])
    r = ranking.rank_scores(names, scores, np.eye(5) * 0.01)
    t = r.to_frame()
    assert list(t["condition"]) == names
    assert list(t["group"]) == [1, 1, 2, 2, 3]
    assert list(t["separated_by"]) == ["top", "unresolved", "votes", "unresolved", "votes"]
    assert list(t["rank"]) == [1, 1, 3, 3, 5]
    assert list(t["rank_low"]) == [1, 1, 3, 3, 5]
    assert list(t["rank_high"]) == [2, 2, 4, 4, 5]
    assert r.groups == [["A", "B"], ["C", "D"], ["E"]]
    adj = r.adjacent_pairs()
    assert list(adj["pair"]) == ["A > B", "B > C", "C > D", "D > E"]
    assert (adj.loc[adj["separated_by"] == "votes", "p_adjusted"] < 0.05).all()
    assert (adj.loc[adj["separated_by"] == "unresolved", "p_adjusted"] >= 0.05).all()


def test_chained_ties_form_one_group_that_keeps_vote_order():
    # A≈B and B≈C, but A beats C: one group; a tie-breaker preferring C cannot put it above A.
    names = ["A", "B", "C"]
    r = ranking.rank_scores(names, np.array([0.3, 0.0, -0.3]), np.eye(3) * 0.01,
                            tiebreak=Scorer({"A": 0.0, "B": 0.5, "C": 1.0}))
    t = r.to_frame()
    assert list(t["group"]) == [1, 1, 1]
    order = list(t["condition"])
    assert order.index("A") < order.index("C")
    assert order == ["B", "A", "C"]
    assert list(t["separated_by"]) == ["top", "tiebreak:vqa@1.0", "votes"]
    assert list(t["rank"]) == [1, 2, 3]


def test_tiebreak_orders_inside_groups_only():
    names = ["A", "B", "C", "D", "E"]
    scores = np.array([3.0, 2.95, 1.0, 0.96, -5.0])
    tb = Scorer({"A": 0.1, "B": 0.9, "C": 0.2, "D": 0.1, "E": 99.0}, name="sobj", version="2")
    assert isinstance(tb, ranking.TieBreaker)
    t = ranking.rank_scores(names, scores, np.eye(5) * 0.01, tiebreak=tb).to_frame()
    assert list(t["condition"]) == ["B", "A", "C", "D", "E"]
    assert list(t["separated_by"]) == ["top", "tiebreak:sobj@2", "votes", "tiebreak:sobj@2", "votes"]
    assert list(t["rank"]) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="no value"):
        ranking.rank_scores(names, scores, np.eye(5) * 0.01, tiebreak=Scorer({"A": 1.0}))


def test_rank_a_simulated_study():
    sim = simulate.simulate_pairwise(PairwiseTruth(8, true_scores=np.linspace(-1.4, 1.4, 8)),
                                     PairwisePanel(50),
                                     PairwiseDesign(20, 20_000),
                                     seed=4)
    res = bt.fit(sim.votes, ci="bootstrap", n_boot=200, seed=1)
    for method in (None, "bootstrap", "cluster", "hessian"):
        r = ranking.rank(res, method=method)
        assert r.params["method"] == (method or "bootstrap")
        t = r.to_frame()
        assert list(t.columns[:7]) == ["rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by"]
        truth_order = list(sim.truth.sort_values("score", ascending=False)["condition"])
        assert list(t["condition"]) == truth_order
        assert list(t["separated_by"]) == ["top"] + ["votes"] * 7
        assert r.params["correction"] == "holm"
        assert len(r.pairwise) == 28


def test_everything_tied_without_votes_signal():
    t = ranking.rank_scores(["a", "b", "c"], np.zeros(3), np.eye(3)).to_frame()
    assert list(t["group"]) == [1, 1, 1]
    assert list(t["rank"]) == [1, 1, 1]


# --------------------------------------------------------------------------- rank inside its interval



def _check_ranking(t, pairwise, *, tiebreak: bool) -> None:
    """Invariants of every ranking: ranks in their intervals, never above a condition that beats you."""
    assert (t["rank_low"] <= t["rank"]).all() and (t["rank"] <= t["rank_high"]).all(), t.to_string()
    assert t["rank"].iloc[0] == 1 and t["rank"].is_monotonic_increasing
    rank = dict(zip(t["condition"], t["rank"], strict=True))
    pos = {c: k for k, c in enumerate(t["condition"])}
    for row in pairwise[pairwise["separable"]].itertuples():
        upper, lower = (row.cond_i, row.cond_j) if row.diff > 0 else (row.cond_j, row.cond_i)
        assert pos[upper] < pos[lower] and rank[upper] < rank[lower], (upper, lower, t.to_string())
    if tiebreak:
        assert list(t["rank"]) == list(range(1, len(t) + 1))


def test_unresolved_chain_does_not_share_a_rank_across_a_separation():
    # A ≈ B and B ≈ C, but A beats C: C cannot share A's rank (its rank interval is [2, 3]).
    t = ranking.rank_scores(["A", "B", "C"], np.array([0.3, 0.0, -0.3]), np.eye(3) * 0.01).to_frame()
    assert list(t["condition"]) == ["A", "B", "C"]
    assert list(t["separated_by"]) == ["top", "unresolved", "unresolved"]
    assert list(t["rank"]) == [1, 1, 3]
    assert list(t["rank_low"]) == [1, 1, 2] and list(t["rank_high"]) == [2, 3, 3]


def test_rank_outside_rank_interval_case():
    """40 votes per pair, A–B 20:20, B–C 20:20, A–C 30:10: C is significantly below A."""
    votes = frames.read_votes(CASES / "rank-outside-rank-interval" / "votes.csv")
    r = ranking.rank(bt.fit(votes, ci="hessian"))
    t = r.to_frame().set_index("condition")
    ac = r.pairwise.set_index(["cond_i", "cond_j"]).loc[("A", "C")]
    assert ac["separable"] and ac["diff"] > 0                       # the premise: A beats C by votes
    assert t.loc["C", "rank"] != 1 and t.loc["C", "rank"] > t.loc["A", "rank"]
    assert t.loc["C", "rank_low"] <= t.loc["C", "rank"] <= t.loc["C", "rank_high"]
    assert r.to_frame()["condition"].iloc[-1] == "C"
    _check_ranking(r.to_frame(), r.pairwise, tiebreak=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 8), seed=st.integers(0, 2**32 - 1), spread=st.floats(0.05, 3.0),
       noise=st.floats(0.01, 1.0), grid=st.sampled_from([0.0, 0.25, 1.0]), tiebreak=st.booleans(),
       singular=st.booleans())
def test_every_rank_lies_in_its_interval_and_respects_separations(n, seed, spread, noise, grid, tiebreak, singular):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, spread, n)
    if grid:
        scores = np.round(scores / grid) * grid                     # exact ties between scores
    factor = rng.normal(0.0, noise, (n, max(1, n // 2) if singular else n + 2))
    cov = factor @ factor.T + (0.0 if singular else 1e-6) * np.eye(n)  # correlated; possibly singular
    names = [f"c{k}" for k in rng.permutation(n)]
    tb = Scorer(dict(zip(names, rng.normal(size=n), strict=True))) if tiebreak else None
    r = ranking.rank_scores(names, scores, cov, tiebreak=tb)
    _check_ranking(r.to_frame(), r.pairwise, tiebreak=tiebreak)
