"""Pair tables (the layouts published studies release) and the NTIRE 2025 result files."""


import numpy as np
import pandas as pd
import pytest

from analysis import aggregate, bradley_terry, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth
from tests.shared_data import DATA

NTIRE = DATA / "ntire2025-vqe"


def _per_value(votes):
    """Per-pair counts of each pref value, as a published table would give them."""
    v = votes[votes["repeat_of"].isna() & votes["gold_expected"].isna()]
    table = pd.crosstab([v["cond_a"], v["cond_b"]], v["pref"])
    table.columns = [f"n_{int(c)}" for c in table.columns]
    return table.reset_index()


def test_per_value_table_reproduces_the_vote_fit():
    sim = simulate.simulate_pairwise(PairwiseTruth(6), PairwisePanel(20), PairwiseDesign(10, 4000), seed=3)
    table = _per_value(sim.votes)
    pt = aggregate.from_pair_table(table)
    assert pt.layout == "per-value"
    for graded in (False, True):
        pt = aggregate.from_pair_table(table, graded=graded)
        res = bradley_terry.fit_counts(pt.conditions, pt.wins, pt.ties, n_votes=pt.n_votes)
        ref = bradley_terry.fit(sim.votes, graded=graded, ci="hessian")  # the same model-based intervals
        np.testing.assert_allclose(res.scores, ref.scores, atol=1e-10)
        np.testing.assert_allclose(res.se, ref.se, rtol=1e-8)
        assert list(res.n_votes) == list(ref.n_votes)


def test_v_columns_follow_p910_numbering():
    n_cols = pd.DataFrame({"cond_a": ["A"], "cond_b": ["B"], "n_-2": [1], "n_-1": [2], "n_0": [3],
                           "n_1": [4], "n_2": [5]})
    v_cols = pd.DataFrame({"cond_a": ["A"], "cond_b": ["B"], "v1": [5], "v2": [4], "v3": [3], "v4": [2],
                           "v5": [1]})
    a, b = aggregate.from_pair_table(n_cols), aggregate.from_pair_table(v_cols)
    np.testing.assert_array_equal(a.wins, b.wins)
    np.testing.assert_array_equal(a.ties, b.ties)
    assert a.wins[0, 1] == 9 and a.wins[1, 0] == 3 and a.ties[0, 1] == 3
    g = aggregate.from_pair_table(v_cols, graded=True)
    assert g.wins[0, 1] == 2 * 5 + 4 and g.wins[1, 0] == 2 * 1 + 2


def test_win_tie_loss_layout_and_repeated_pairs_add_up():
    df = pd.DataFrame({"cond_a": ["A", "B", "A"], "cond_b": ["B", "C", "B"], "wins_a": [3, 1, 2],
                       "ties": [1, 0, 1], "wins_b": [1, 2, 0]})
    pt = aggregate.from_pair_table(df)
    assert pt.layout == "win-tie-loss"
    assert pt.wins[0, 1] == 5 and pt.wins[1, 0] == 1 and pt.ties[0, 1] == pt.ties[1, 0] == 2
    assert list(pt.n_votes) == [8, 11, 3]


def test_mean_vote_mapping_is_the_documented_formula():
    df = pd.DataFrame({"cond_a": ["A", "A"], "cond_b": ["B", "C"], "n": [100, 100], "mean_pref": [0.6, -1.9]})
    pt = aggregate.from_pair_table(df, tie_share=0.2, strength=1.5)
    p_a = 0.5 * (1 + 0.6 / (0.8 * 1.5))
    assert pt.wins[0, 1] == pytest.approx(80 * p_a)
    assert pt.wins[1, 0] == pytest.approx(80 * (1 - p_a))
    assert pt.ties[0, 1] == pytest.approx(20)
    assert pt.assumption["clipped"] == 1  # −1.9 is beyond what strength 1.5 can produce
    assert pt.wins[2, 0] == pytest.approx(80)
    dmos = aggregate.from_pair_table(df.assign(dmos=3 - df["mean_pref"]).drop(columns="mean_pref"))
    np.testing.assert_allclose(dmos.wins, pt.wins)
    with pytest.raises(ValueError, match="strength"):
        aggregate.from_pair_table(df, strength=3)


def test_bad_pair_tables():
    with pytest.raises(ValueError, match="cond_b"):
        aggregate.from_pair_table(pd.DataFrame({"cond_a": ["A"], "wins_a": [1]}))
    with pytest.raises(ValueError, match="need counts"):
        aggregate.from_pair_table(pd.DataFrame({"cond_a": ["A"], "cond_b": ["B"], "x": [1]}))
    with pytest.raises(ValueError, match="itself"):
        aggregate.from_pair_table(pd.DataFrame({"cond_a": ["A"], "cond_b": ["A"], "wins_a": [1], "ties": [0],
                                                "wins_b": [0]}))


@pytest.mark.parametrize(
    ("name", "n_pairs", "n_conditions"),
    [("mid_point.txt", 21, 7), ("final.txt", 21, 7), ("combined_midpoint_final.txt", 41, 12)],
)
def test_ntire_files_reproduce_the_published_ranking_order(name, n_pairs, n_conditions):
    nt = aggregate.read_ntire(NTIRE / name)
    assert len(nt.pairs) == n_pairs
    assert len(nt.published) == n_conditions
    assert nt.pairs["n"].min() > 4000
    assert {"p_colors", "p_brightness", "p_skintone", "ci95", "median"} <= set(nt.pairs.columns)
    assert nt.published["log_vote"].mean() == pytest.approx(0.0, abs=1e-12)
    pt = nt.pair_table()
    assert pt.assumption["clipped"] == 0
    for model in bradley_terry.TIE_MODELS:
        res = bradley_terry.fit_counts(pt.conditions, pt.wins, pt.ties, tie_model=model)
        ours = res.to_frame().sort_values("score", ascending=False)["condition"].tolist()
        assert ours == nt.published["condition"].tolist(), model
    # Davidson with the default mapping lands close to the published spread.
    res = bradley_terry.fit_counts(pt.conditions, pt.wins, pt.ties)
    ours = res.to_frame().set_index("condition")["score"].loc[nt.published["condition"]]
    assert np.corrcoef(ours, nt.published["log_vote"])[0, 1] > 0.99
    assert ours.std() / nt.published["log_vote"].std() == pytest.approx(1.0, abs=0.1)


def test_read_ntire_rejects_other_text(tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="no 'X_Y"):
        aggregate.read_ntire(bad)
