"""Synthetic studies: valid frames, the truth they claim, the special rows they promise."""

import numpy as np
import pandas as pd
import pytest

from analysis import frames, methods, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth, RatingsDesign, RatingsPanel, RatingsTruth


def test_pairwise_frame_is_valid_and_named():
    sim = simulate.simulate_pairwise(PairwiseTruth(12),
                                     PairwisePanel(40),
                                     PairwiseDesign(30, 3000, repeats_per_rater=3, gold_per_rater=2),
                                     seed=1)
    v = sim.votes
    frames.validate(v, "pairwise")
    assert len(v) == 3000 + 40 * 3 + 40 * 2
    assert all(isinstance(r, str) for r in v["rater"].unique())
    assert set(v["rater"]) == {f"r{i:03d}" for i in range(1, 41)}
    main = v[v["gold_expected"].isna()]
    assert set(main["cond_a"]) | set(main["cond_b"]) == {f"C{i:02d}" for i in range(1, 13)}
    assert main["content"].str.match(r"^v\d{4}$").all()
    assert list(sim.truth.columns) == ["condition", "score"]
    assert sim.truth["score"].mean() == pytest.approx(0.0, abs=1e-12)
    assert sim.stimuli is None
    assert sim.params["n_votes"] == 3000


def test_same_seed_same_study():
    a = simulate.simulate_pairwise(PairwiseTruth(5), PairwisePanel(10), PairwiseDesign(5, 500), seed=7).votes
    b = simulate.simulate_pairwise(PairwiseTruth(5), PairwisePanel(10), PairwiseDesign(5, 500), seed=7).votes
    pd.testing.assert_frame_equal(a, b)


def test_repeats_follow_their_first_showing_with_sides_swapped():
    v = simulate.simulate_pairwise(PairwiseTruth(6),
                                   PairwisePanel(20),
                                   PairwiseDesign(10, 2000, repeats_per_rater=4),
                                   seed=2).votes
    reps = v[v["repeat_of"].notna()]
    assert len(reps) == 80
    firsts = v.set_index(["session", "trial"])
    for _, row in reps.iterrows():
        first = firsts.loc[(row["session"], row["repeat_of"])]
        assert (first["cond_a"], first["cond_b"], first["content"]) == (row["cond_a"], row["cond_b"], row["content"])
        assert first["shown_left"] != row["shown_left"]
        assert row["trial"] > row["repeat_of"]


def test_gold_rows_and_honest_raters_pass_them():
    v = simulate.simulate_pairwise(PairwiseTruth(4),
                                   PairwisePanel(10, gold_slip=0.0),
                                   PairwiseDesign(5, 400, gold_per_rater=5),
                                   seed=3).votes
    gold = v[v["gold_expected"].notna()]
    assert len(gold) == 50
    assert set(gold["cond_a"]) == {simulate.GOLD_REFERENCE}
    assert (gold["pref"] == gold["gold_expected"]).all()


def test_scales_ties_and_position_bias():
    v = simulate.simulate_pairwise(PairwiseTruth(4, tie_rate=0.0),
                                   PairwisePanel(10),
                                   PairwiseDesign(5, 4000, method="2afc"),
                                   seed=4).votes
    assert set(v["pref"]) == {-1, 1}
    with pytest.raises(ValueError, match="no 'no preference'"):
        simulate.simulate_pairwise(PairwiseTruth(4, tie_rate=0.2),
                                   PairwisePanel(10),
                                   PairwiseDesign(5, 100, method="2afc"))
    eq = simulate.simulate_pairwise(PairwiseTruth(4, true_scores=np.zeros(4), tie_rate=0.3),
                                    PairwisePanel(10),
                                    PairwiseDesign(5, 40_000),
                                    seed=5).votes
    assert (eq["pref"] == 0).mean() == pytest.approx(0.3, abs=0.01)
    ccr = simulate.simulate_pairwise(PairwiseTruth(4),
                                     PairwisePanel(10),
                                     PairwiseDesign(5, 5000, method="ccr7"),
                                     seed=5).votes
    assert set(ccr["pref"]) == set(range(-3, 4))
    biased = simulate.simulate_pairwise(PairwiseTruth(4, true_scores=np.zeros(4), tie_rate=0),
                                        PairwisePanel(10, position_bias=1.0),
                                        PairwiseDesign(5, 20_000, method="2afc"),
                                        seed=6).votes
    left_won = np.where(biased["shown_left"] == "a", biased["pref"] > 0, biased["pref"] < 0)
    assert left_won.mean() == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.015)


def test_spammers_and_thurstone():
    sim = simulate.simulate_pairwise(PairwiseTruth(4),
                                     PairwisePanel(20, spammer_fraction=0.25, spammer_style="left"),
                                     PairwiseDesign(5, 2000),
                                     seed=8)
    assert sim.raters["spammer"].sum() == 5
    spam = sim.votes[sim.votes["rater"].isin(sim.raters.loc[sim.raters["spammer"], "rater"])]
    assert (np.where(spam["shown_left"] == "a", spam["pref"], -spam["pref"]) == 2).all()
    assert (spam["answer_ms"].median()) < 1000
    th = simulate.simulate_pairwise(PairwiseTruth(4, model="thurstone"),
                                    PairwisePanel(5),
                                    PairwiseDesign(5, 500),
                                    seed=9)
    frames.validate(th.votes)


@pytest.mark.parametrize("scale", ["acr5", "acr-hr", "dcr5", "slider100"])
def test_ratings_frame_is_valid(scale):
    sim = simulate.simulate_ratings(RatingsTruth(6),
                                    RatingsPanel(10),
                                    RatingsDesign(8, method=scale, repeats_per_rater=2, gold_per_rater=2),
                                    seed=1)
    v = frames.validate(sim.votes, "ratings")
    n_cond = 6 + (scale == "acr-hr")
    assert len(v) == 10 * 8 * n_cond + 10 * 2 + 10 * 2
    sc = methods.METHODS[scale]
    assert v["score"].between(sc.low, sc.high).all()
    assert set(sim.truth.columns) == {"condition", "score", "quality"}
    assert sim.truth["score"].mean() == pytest.approx(0.0, abs=1e-12)
    assert len(sim.stimuli) == 8 * n_cond
    assert {"rater", "spammer", "bias", "inconsistency"} <= set(sim.raters.columns)
    if scale == "acr-hr":
        assert simulate.REFERENCE_CONDITION in set(v["cond"])
        assert sim.params["reference"] == simulate.REFERENCE_CONDITION


def test_ratings_follow_the_subject_model():
    sim = simulate.simulate_ratings(RatingsTruth(4),
                                    RatingsPanel(40, rater_bias_sd=10.0, rater_inconsistency=5.0),
                                    RatingsDesign(50, method="slider100"),
                                    seed=3)
    v = sim.votes
    main = v[v["gold_expected"].isna()]
    got = main.groupby("rater")["score"].mean() - main["score"].mean()
    want = sim.raters.set_index("rater")["bias"]
    assert np.corrcoef(got.to_numpy(float), want.loc[got.index].to_numpy(float))[0, 1] > 0.95
    assert sim.raters["inconsistency"].mean() == pytest.approx(5.0, rel=0.3)


def test_ratings_sparse_design_and_bad_arguments():
    sim = simulate.simulate_ratings(RatingsTruth(5), RatingsPanel(20), RatingsDesign(10, n_votes=300), seed=2)
    assert len(sim.votes) == 300
    with pytest.raises(ValueError):
        simulate.simulate_ratings(design=RatingsDesign(method="pc5"))
    with pytest.raises(ValueError):
        simulate.simulate_pairwise(design=PairwiseDesign(method="acr5"))
