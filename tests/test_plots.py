"""Figures: traces, ordering, hover content; standalone HTML needs no network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from analysis import bradley_terry, mos, plots, screening, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth, RatingsDesign, RatingsPanel, RatingsTruth


@pytest.fixture(scope="module")
def study():
    sim = simulate.simulate_pairwise(PairwiseTruth(5, true_scores=[1.5, 0.5, 0.0, -0.5, -1.5]),
                                     PairwisePanel(15, spammer_fraction=0.15),
                                     PairwiseDesign(10, 1500, reason_rate=0.5, repeats_per_rater=2, gold_per_rater=2),
                                     seed=3)
    return sim.votes


def _scores(names, values, half=0.1):
    v = np.asarray(values, dtype=float)
    return pd.DataFrame({"condition": names, "score": v, "ci_low": v - half, "ci_high": v + 2 * half,
                         "n_votes": 100})


def test_interval_plot_orders_conditions_by_score_and_draws_asymmetric_bars():
    fig = plots.interval_plot(_scores(["b", "a", "c"], [0.0, 1.0, -1.0]))
    assert isinstance(fig, go.Figure)
    (tr,) = fig.data
    assert list(tr.text) == ["a", "b", "c"]                      # best first, left to right
    assert list(tr.y) == [1.0, 0.0, -1.0]
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "c"]
    assert np.allclose(tr.error_y.array, 0.2) and np.allclose(tr.error_y.arrayminus, 0.1)
    assert fig.layout.title.text and fig.layout.yaxis.title.text and fig.layout.xaxis.title.text


def test_interval_plot_factor_panel_and_published_overlay():
    main = _scores(["a", "b", "c"], [1.0, 0.0, -1.0])
    factors = {"colours": _scores(["a", "b", "c"], [0.8, 0.1, -0.9]),
               "brightness": _scores(["c", "a"], [-0.2, 0.2])}      # b missing: skipped, not an error
    pub = pd.DataFrame({"condition": ["a", "b", "c", "zz"], "score": [0.9, 0.0, -0.9, 5.0]})
    fig = plots.interval_plot(main, factors, published=pub)
    assert [t.name for t in fig.data] == ["overall", "published", "colours", "brightness"]
    overall, published, colours, brightness = fig.data
    assert list(published.text) == ["a", "b", "c"]                 # unknown condition dropped
    assert all(p > o for p, o in zip(published.x, overall.x, strict=True))   # side by side, same tick
    assert colours.yaxis == "y2" and brightness.yaxis == "y2" and overall.yaxis == "y"
    # The factor points of one condition sit around its tick, in factor order.
    assert colours.x[0] < 0 < brightness.x[1] and abs(brightness.x[1]) < 0.5
    assert list(brightness.text) == ["c", "a"]


def test_interval_plot_rejects_frames_without_scores():
    with pytest.raises(ValueError, match="condition, score"):
        plots.interval_plot(pd.DataFrame({"condition": ["a"]}))


def test_winrate_heatmap_cells_are_complementary_and_hover_has_counts(study):
    pc = bradley_terry.count_votes(study).pairs
    order = ["C05", "C04", "C03", "C02", "C01"]
    fig = plots.winrate_heatmap(study, order=order)
    (hm,) = fig.data
    assert list(hm.x) == order and list(hm.y) == order
    z = np.array(hm.z, dtype=float)
    off = ~np.eye(5, dtype=bool)
    assert np.allclose((z + z.T)[off], 1.0)
    assert np.isnan(np.diag(z)).all()
    # C01 is the best condition: it wins most against C05 (row C01 = last row, column C05 = first).
    assert z[4, 0] > 0.7
    wins, ties = pc.matrices()
    total = np.asarray(hm.customdata)[..., 3]
    assert total.sum() == pytest.approx((wins + wins.T + ties).sum())
    assert "wins" in hm.hovertemplate and "ties" in hm.hovertemplate
    # Same figure from aggregated counts.
    z2 = np.array(plots.winrate_heatmap(pc, order=order).data[0].z, dtype=float)
    assert np.allclose(z2[off], z[off])


def test_winrate_heatmap_unknown_order_name():
    votes = simulate.simulate_pairwise(PairwiseTruth(3), PairwisePanel(3), PairwiseDesign(3, 60), seed=0).votes
    with pytest.raises(ValueError, match="nope"):
        plots.winrate_heatmap(votes, order=["nope"])


def test_rater_qc_highlights_dropped_raters_with_their_rule(study):
    sr = screening.screen(study)
    assert sr.dropped, "the fixture's spammers must be dropped"
    fig = plots.rater_qc(sr.raters)
    kept, dropped = fig.data
    assert (kept.name, dropped.name) == ("kept", "dropped")
    assert sorted(dropped.text) == sorted(sr.dropped)
    assert len(kept.text) == len(sr.kept)
    rules = [row[3] for row in dropped.customdata]
    assert all(r and r != "—" for r in rules)
    assert "consistency" in fig.layout.xaxis.title.text and "gold" in fig.layout.yaxis.title.text


def test_rater_qc_falls_back_when_a_study_has_no_gold():
    raters = pd.DataFrame({"rater": ["r1", "r2"], "kept": [True, False], "dropped_by": ["", "loo_corr"],
                           "consistency": [1.0, 0.5], "gold_accuracy": [np.nan, np.nan], "loo_corr": [0.8, 0.1],
                           "n_votes": [10, 10]})
    fig = plots.rater_qc(raters)
    assert "leave-one-out" in fig.layout.yaxis.title.text


def test_mos_per_content_orders_contents_and_conditions():
    sim = simulate.simulate_ratings(RatingsTruth(3, true_scores=[1.0, 0.0, -1.0]),
                                    RatingsPanel(8),
                                    RatingsDesign(4),
                                    seed=1)
    table = mos.mos(sim.votes, by=("content", "cond")).to_frame()
    fig = plots.mos_per_content(table)
    assert [t.name for t in fig.data] == ["C01", "C02", "C03"]       # best condition first
    means = table.groupby("content")["mos"].mean().sort_values()
    assert list(fig.layout.xaxis.categoryarray) == list(means.index)  # hardest content first
    assert all(len(t.x) == 4 for t in fig.data)


def test_to_html_embeds_plotly_inline():
    page = plots.to_html(plots.interval_plot(_scores(["a", "b"], [1.0, -1.0])))
    assert "<html>" in page and "plotly" in page.lower()
    assert '<script src="http' not in page
    assert len(page) > 1_000_000                                      # the bundle is inline
    frag = plots.to_html(plots.interval_plot(_scores(["a", "b"], [1.0, -1.0])), include_plotlyjs=False,
                         full_html=False)
    assert len(frag) < 50_000 and "<html>" not in frag
