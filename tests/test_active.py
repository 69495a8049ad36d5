"""Active pair selection (expected information gain), the stopping rule and power planning."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from analysis import active, planning, report, screening
from analysis import bradley_terry as bt
from analysis import ranking as rk
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth, simulate_pairwise


def davidson_counts(rng, s, pairs_i, pairs_j, tie_rate=0.0):
    """Win and symmetric tie matrices of one Davidson vote per (pairs_i[k], pairs_j[k])."""
    n = len(s)
    pw, pt, _ = active._davidson_probs(s[pairs_i] - s[pairs_j], planning.nu_from_tie_rate(tie_rate))
    u = rng.random(len(pairs_i))
    out = np.where(u < pw, 0, np.where(u < pw + pt, 1, 2))
    w, t = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(w, (pairs_i[out == 0], pairs_j[out == 0]), 1)
    np.add.at(w, (pairs_j[out == 2], pairs_i[out == 2]), 1)
    np.add.at(t, (pairs_i[out == 1], pairs_j[out == 1]), 1)
    return w, t + t.T


def round_robin(rng, s, per_pair, tie_rate=0.0):
    iu, ju = np.triu_indices(len(s), k=1)
    return davidson_counts(rng, s, np.repeat(iu, per_pair), np.repeat(ju, per_pair), tie_rate)


def test_prefers_uncertain_close_pairs_over_resolved_far_ones():
    # 0 and 1 are close and not separated; 2 and 3 are far from everything and from each other.
    s = np.array([2.0, 1.95, 0.0, -2.0])
    w, t = round_robin(np.random.default_rng(1), s, 60, tie_rate=0.2)
    picks = active.next_pairs(w, t, 20, seed=0)
    counts = Counter(picks)
    assert counts[(0, 1)] >= 15, counts
    assert counts[(2, 3)] == 0 and counts[(0, 3)] == 0 and counts[(1, 3)] == 0
    assert all(i < j for i, j in picks) and len(picks) == 20


def test_batch_is_diverse():
    # Before any vote every pair is equally unknown: a batch spreads over the pairs.
    picks = active.next_pairs(np.zeros((6, 6)), np.zeros((6, 6)), 30, seed=3)
    counts = Counter(picks)
    assert len(counts) == 15 and max(counts.values()) == 2
    # With votes: a batch of 100 over 12 conditions is not 100 copies of the best pair.
    s = np.linspace(1.5, -1.5, 12)
    w, t = round_robin(np.random.default_rng(2), s, 5, tie_rate=0.2)
    counts = Counter(active.next_pairs(w, t, 100, seed=0))
    assert len(counts) >= 8 and max(counts.values()) <= 40, counts


def test_pending_counts_as_already_chosen():
    s = np.array([0.8, 0.5, 0.45, 0.0, -0.2, -1.0, -1.1])
    w, t = round_robin(np.random.default_rng(4), s, 12, tie_rate=0.1)
    first = active.next_pairs(w, t, 24, seed=5)
    pending = np.zeros_like(w)
    for i, j in first[:12]:
        pending[j, i] += 1  # either cell of the pair
    # The greedy batch treats in-flight comparisons exactly as its own earlier picks.
    assert active.next_pairs(w, t, 12, pending=pending, seed=5) == first[12:]
    # Heavy traffic in flight on the best pair moves the batch elsewhere.
    best = Counter(first).most_common(1)[0][0]
    busy = np.zeros_like(w)
    busy[best] = 5000
    assert best not in active.next_pairs(w, t, 12, pending=busy, seed=5)


def test_deterministic_with_seed():
    s = np.linspace(1, -1, 8)
    w, t = round_robin(np.random.default_rng(6), s, 3, tie_rate=0.2)
    assert active.next_pairs(w, t, 40, seed=11) == active.next_pairs(w, t, 40, seed=11)
    empty = np.zeros((8, 8))
    batches = {tuple(active.next_pairs(empty, empty, 5, seed=k)) for k in range(6)}
    assert len(batches) > 1  # the seed breaks exact ties between equally good pairs


def test_large_batches_in_blocks_and_k_zero():
    w, t = round_robin(np.random.default_rng(7), np.linspace(1, -1, 5), 4)
    assert active.next_pairs(w, t, 0) == []
    picks = active.next_pairs(w, t, 1000, seed=0)
    assert len(picks) == 1000 and len(set(picks)) <= active.MAX_STEPS


def test_laplace_posterior_matches_the_library_fit_when_the_prior_is_negligible():
    s = np.array([0.6, 0.1, -0.2, -0.5])
    w, t = round_robin(np.random.default_rng(8), s, 4000, tie_rate=0.25)
    post = active._posterior(w, t, None)
    fit = bt.fit_counts(list("abcd"), w, t, tie_model="davidson", ci="hessian")
    np.testing.assert_allclose(post.mean - post.mean.mean(), fit.scores, atol=2e-3)
    assert post.nu == pytest.approx(fit.params["nu"], rel=1e-2)
    u = np.eye(4) - 1 / 4  # centring: compare the covariances of centred scores
    np.testing.assert_allclose(u @ post.cov @ u, fit.cov, rtol=2e-2, atol=1e-7)


def _names_and_matrices(votes):
    pc = bt.count_votes(votes).pairs
    w, t = pc.matrices()
    return list(pc.conditions), w, t


def test_stopping_state_agrees_with_the_report_and_the_ranking():
    truth = PairwiseTruth(n_conditions=6, true_scores=(1.0, 0.9, 0.3, 0.0, -0.8, -1.4), tie_rate=0.2)
    sim = simulate_pairwise(truth, PairwisePanel(n_raters=40), PairwiseDesign(n_contents=10, n_votes=3000), seed=3)
    names, w, t = _names_and_matrices(sim.votes)
    st = active.stopping_state(w, t, votes_used=3000, budget=10_000)
    res = report.analyze(sim.votes, report.AnalysisOptions(ci="model", screening_rules=screening.ScreeningRules.none()))
    adj = res.ranking.adjacent
    assert [names[k] for k in st.order] == list(res.ranking.table["condition"])
    assert [(names[a], names[b]) for a, b in st.unresolved] == [
        (u, lo) for u, lo, by in zip(adj["upper"], adj["lower"], adj["separated_by"], strict=True) if by != "votes"]
    assert st.unresolved  # C01 ≈ C02 (0.1 apart) is not separated by 3000 votes
    assert not st.done and st.reason is None and st.votes_saved is None
    fit = bt.fit_counts(names, w, t, ci="hessian")
    assert ranking_open(rk.rank(fit)) == [(names[a], names[b]) for a, b in st.unresolved]
    assert active.stopping_state(w, t, votes_used=10_000, budget=10_000).reason == "budget"


def ranking_open(r):
    a = r.adjacent
    return [(u, lo) for u, lo, by in zip(a["upper"], a["lower"], a["separated_by"], strict=True) if by != "votes"]


def test_stopping_state_done_by_separation_reports_votes_saved():
    s = np.array([2.0, 0.0, -2.0])
    w, t = round_robin(np.random.default_rng(9), s, 300, tie_rate=0.2)
    st = active.stopping_state(w, t, votes_used=900, budget=5000)
    assert st.done and st.reason == "separated" and st.unresolved == () and st.votes_saved == 4100
    assert st.order == (0, 1, 2)
    assert active.stopping_state(w, t, votes_used=900, budget=None).votes_saved is None


def test_stopping_state_before_a_fit_exists():
    w = np.zeros((4, 4))
    w[0, 1] = 3  # disconnected, and 0 never lost
    st = active.stopping_state(w, np.zeros((4, 4)), votes_used=3, budget=None)
    assert not st.done and len(st.unresolved) == 3 and sorted(st.order) == [0, 1, 2, 3]
    none = active.stopping_state(np.zeros((3, 3)), np.zeros((3, 3)), votes_used=0, budget=10)
    assert not none.done and none.unresolved == ((0, 1), (1, 2))


def test_votes_needed_formula():
    n = planning.votes_needed(0.5)
    z = 1.959963984540054 + 0.8416212335729143
    assert n == int(np.ceil(z**2 / (float(active.fisher_weight(0.5)) * 0.5**2)))  # p(1 − p) at δ, no ties
    assert planning.votes_needed(0.5, tie_rate=0.3) > n                 # ties carry less information
    assert planning.votes_needed(0.5, design_effect=2.0) in (2 * n - 1, 2 * n, 2 * n + 1)
    assert planning.votes_needed(0.25) > 3.5 * n                        # ~ 1/δ²
    assert planning.votes_needed(0.5, comparisons=66) > n


@pytest.mark.slow
def test_votes_needed_gives_the_power_by_simulation():
    # Plain BT (2afc): at the computed n, the pair is separated in ≈ power of the studies.
    delta, power = 0.5, 0.8
    n = planning.votes_needed(delta, power=power)
    hits = []
    for rep in range(150):
        sim = simulate_pairwise(PairwiseTruth(n_conditions=2, true_scores=(delta / 2, -delta / 2), tie_rate=0.0),
                                PairwisePanel(n_raters=20),
                                PairwiseDesign(n_contents=5, n_votes=n, method="2afc", reasons=()), seed=rep)
        fit = bt.fit(sim.votes, ci="hessian")
        hits.append(rk.rank(fit).adjacent["separated_by"].iloc[0] == "votes")
    assert np.mean(hits) == pytest.approx(power, abs=0.09)
    # With Davidson ties (direct draws of the model the formula assumes).
    rng = np.random.default_rng(0)
    n = planning.votes_needed(delta, power=power, tie_rate=0.3)
    s = np.array([delta / 2, -delta / 2])
    hits = []
    for _ in range(300):
        w, t = davidson_counts(rng, s, np.zeros(n, int), np.ones(n, int), tie_rate=0.3)
        fit = bt.fit_counts(["a", "b"], w, t, ci="hessian")
        hits.append(rk.rank(fit).adjacent["separated_by"].iloc[0] == "votes")
    assert np.mean(hits) == pytest.approx(power, abs=0.07)


def test_votes_needed_from_pilot():
    truth = PairwiseTruth(n_conditions=4, true_scores=(0.9, 0.4, 0.0, -1.3), tie_rate=0.25)
    sim = simulate_pairwise(truth, PairwisePanel(n_raters=30, rater_noise=0.4),
                            PairwiseDesign(n_contents=8, n_votes=2400), seed=5)
    plan = planning.votes_needed_from_pilot(sim.votes)
    assert 0.1 < plan.tie_rate < 0.45 and plan.design_effect >= 1.0 and plan.n_raters == 30
    assert list(plan.adjacent.columns) == ["upper", "lower", "diff", "votes_per_pair"]
    assert len(plan.adjacent) == 3 and (plan.adjacent["diff"] > 0).all()
    closest = plan.adjacent.loc[plan.adjacent["diff"].idxmin(), "votes_per_pair"]
    assert closest == plan.adjacent["votes_per_pair"].max()
    assert plan.total_adjacent == int(plan.adjacent["votes_per_pair"].sum())
    fixed = planning.votes_needed_from_pilot(sim.votes, delta=0.3)
    assert fixed.votes_per_pair == planning.votes_needed(0.3, tie_rate=fixed.tie_rate,
                                                       design_effect=fixed.design_effect)
    assert (fixed.adjacent["votes_per_pair"] == fixed.votes_per_pair).all()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: active.next_pairs(np.zeros((3, 2)), np.zeros((3, 3)), 1), "square"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.zeros((2, 2)), 1), "3×3"),
    (lambda: active.next_pairs(-np.ones((3, 3)) + np.eye(3), np.zeros((3, 3)), 1), "non-negative"),
    (lambda: active.next_pairs(np.full((3, 3), np.nan), np.zeros((3, 3)), 1), "finite"),
    (lambda: active.next_pairs(np.eye(3), np.zeros((3, 3)), 1), "diagonal"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.triu(np.ones((3, 3)), 1), 1), "symmetric"),
    (lambda: active.next_pairs(np.zeros((1, 1)), np.zeros((1, 1)), 1), "at least 2"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.zeros((3, 3)), -1), "k must"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.zeros((3, 3)), 2.5), "k must"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.zeros((3, 3)), 1, pending=np.ones((2, 2))), "pending"),
    (lambda: active.next_pairs(np.zeros((3, 3)), np.zeros((3, 3)), 1, alpha=1.5), "alpha"),
    (lambda: active.next_pairs([["a", "b"], ["c", "d"]], np.zeros((2, 2)), 1), "numeric"),
    (lambda: active.stopping_state(np.zeros((3, 3)), np.zeros((3, 3)), votes_used=-1, budget=None), "votes_used"),
    (lambda: active.stopping_state(np.zeros((3, 3)), np.zeros((3, 3)), votes_used=1, budget=0), "budget"),
    (lambda: planning.votes_needed(0.0), "delta"),
    (lambda: planning.votes_needed(float("inf")), "delta"),
    (lambda: planning.votes_needed(0.3, power=1.0), "power"),
    (lambda: planning.votes_needed(0.3, tie_rate=1.0), "tie_rate"),
    (lambda: planning.votes_needed(0.3, design_effect=0), "design_effect"),
    (lambda: planning.votes_needed(0.3, comparisons=0), "comparisons"),
    (lambda: planning.votes_needed_from_pilot(pd.DataFrame({"x": [1]}), delta=-1.0), "delta"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
