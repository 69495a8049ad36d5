"""analyze() + write_report(): the chain on pairwise, ratings and pair-table input, and the files."""

from __future__ import annotations

import pandas as pd
import pytest

import analysis
from analysis import bradley_terry, frames, report, screening, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth, RatingsDesign, RatingsPanel, RatingsTruth

TRUTH = [1.2, 0.6, 0.0, -0.6, -1.2]


@pytest.fixture(scope="module")
def pairwise():
    return simulate.simulate_pairwise(PairwiseTruth(5, true_scores=TRUTH),
                                      PairwisePanel(20, spammer_fraction=0.1),
                                      PairwiseDesign(12, 2500, reason_rate=0.5, repeats_per_rater=2, gold_per_rater=3),
                                      seed=7)


@pytest.fixture(scope="module")
def result(pairwise):
    return report.analyze(pairwise.votes, report.AnalysisOptions(ci="bootstrap", bootstrap=200, seed=1))


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "out"
    report.write_report(result, out)
    return out


def test_pairwise_analysis_recovers_the_truth_and_drops_spammers(pairwise, result):
    assert result.kind == "pairwise" and result.source == "votes"
    assert list(result.ranking.table["condition"]) == ["C01", "C02", "C03", "C04", "C05"]
    spammers = set(pairwise.raters.loc[pairwise.raters["spammer"], "rater"])
    assert spammers and spammers <= set(result.screening.dropped)
    assert result.counts["rows"] == len(pairwise.votes)
    assert result.counts["votes_fitted"] < result.counts["main_rows"]      # dropped raters' votes left out
    assert result.params["rank_by"] == "bootstrap" and result.params["bt.n_boot"] == 200
    assert result.params["ci"] == "bootstrap" and (result.scores["ci_method"] == "bootstrap").all()
    assert result.params["version"] == analysis.__version__
    assert set(result.by_reason) == {"colours", "brightness", "skin tone"}
    for frame in result.by_reason.values():
        assert list(frame.columns[:5]) == ["condition", "score", "se", "ci_low", "ci_high"]
        assert (frame["ci_method"] == "bootstrap").all()


def test_intervals_are_rater_clustered_by_default(pairwise, result):
    res = report.analyze(pairwise.votes, report.AnalysisOptions(seed=1))
    assert res.params["ci"] == "cluster" and res.params["rank_by"] == "cluster" and res.params["bootstrap"] == 0
    assert (res.scores["ci_method"] == "cluster").all() and res.fit.boot is None
    assert list(res.ranking.table["condition"]) == ["C01", "C02", "C03", "C04", "C05"]
    pd.testing.assert_frame_equal(res.scores, result.fit.to_frame("cluster"))


def test_report_directory_has_the_documented_files_and_columns(result, written):
    assert sorted(p.name for p in written.iterdir()) == sorted(report.REPORT_FILES)
    ranking = pd.read_csv(written / "ranking.csv")
    assert list(ranking.columns[:7]) == ["rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by"]
    assert ranking["separated_by"].iloc[0] == "top"
    assert set(ranking["separated_by"].iloc[1:]) <= {"votes", "unresolved"}
    scores = pd.read_csv(written / "scores.csv")
    assert list(scores.columns[:7]) == ["condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes"]
    assert (scores["ci_method"] == "bootstrap").all()                         # one interval, named
    assert not {"boot_se", "boot_ci_low", "boot_ci_high"} & set(scores.columns)
    raters = pd.read_csv(written / "raters.csv", keep_default_na=False)
    assert len(raters) == raters["rater"].nunique() == len(result.raters)
    assert {"kept", "dropped_by"} <= set(raters.columns)
    dropped = raters[raters["kept"].astype(str) == "False"]
    assert len(dropped) and (dropped["dropped_by"] != "").all()


def test_report_html_is_self_contained_and_says_what_was_done(result, written):
    page = (written / "report.html").read_text(encoding="utf-8")
    assert '<script src="http' not in page
    assert page.count("plotly.js v") == 1                                     # bundle embedded once
    assert analysis.__version__ in page
    for needle in ("davidson", "bt.n_boot", "bootstrap", "rank_by", "min_gold_accuracy", "votes_fitted",
                   "Dropped raters and why", "Adjacent pairs", "holm"):
        assert needle in page, needle
    for rater in result.screening.dropped:
        assert rater in page
    assert page.count('<div id="') >= 3                                        # intervals, win rate, rater QC


def test_unresolved_pairs_and_tie_groups_are_listed(tmp_path):
    sim = simulate.simulate_pairwise(PairwiseTruth(3, true_scores=[0.05, 0.0, -0.05]),
                                     PairwisePanel(6),
                                     PairwiseDesign(5, 300),
                                     seed=2)
    for ci, rank_by in (("cluster", "cluster"), ("model", "hessian")):
        res = report.analyze(sim.votes, report.AnalysisOptions(ci=ci, screening_rules=screening.ScreeningRules.none()))
        assert res.params["rank_by"] == rank_by
        assert len(res.groups) == 1 and len(res.unresolved) == 2
        page = report.render_html(res)
        assert "not resolved" in page and "Statistically tied groups" in page


class _Objective:
    """A stand-in objective scorer: prefers names late in the alphabet."""

    name = "fake-vqa"
    version = "9.9"

    def __call__(self, conditions):
        return {c: float(ord(c[-1])) for c in conditions}


def test_tiebreak_is_passed_through_and_reported():
    sim = simulate.simulate_pairwise(PairwiseTruth(3, true_scores=[0.05, 0.0, -0.05]),
                                     PairwisePanel(6),
                                     PairwiseDesign(5, 300),
                                     seed=2)
    res = report.analyze(sim.votes, report.AnalysisOptions(bootstrap=0, screening_rules=screening.ScreeningRules.none(),
                                                           tiebreak=_Objective()))
    table = res.ranking.table
    assert list(table["condition"]) == ["C03", "C02", "C01"]
    assert list(table["separated_by"][1:]) == ["tiebreak:fake-vqa@9.9"] * 2
    assert res.params["tiebreak"] == "fake-vqa@9.9"
    assert "tiebreak:fake-vqa@9.9" in report.render_html(res)


def test_a_factor_that_cannot_be_fitted_becomes_a_note():
    votes = simulate.simulate_pairwise(PairwiseTruth(4),
                                       PairwisePanel(8),
                                       PairwiseDesign(5, 400, reason_rate=0.0),
                                       seed=4).votes.copy()
    votes.loc[votes.index[:2], "reason"] = "rare"
    res = report.analyze(votes, report.AnalysisOptions(bootstrap=0, screening_rules=screening.ScreeningRules.none()))
    assert res.by_reason == {}
    assert any("'rare'" in n for n in res.notes)


def test_ratings_analysis_ranks_by_mos_and_dmos(tmp_path):
    sim = simulate.simulate_ratings(RatingsTruth(4, true_scores=[1.5, 0.5, -0.5, -1.5]),
                                    RatingsPanel(12),
                                    RatingsDesign(6, repeats_per_rater=2),
                                    seed=5)
    res = report.analyze(sim.votes, report.AnalysisOptions(bootstrap=100, subject_model=True))
    assert res.kind == "ratings" and res.params["measure"] == "mos"
    assert list(res.ranking.table["condition"]) == ["C01", "C02", "C03", "C04"]
    assert list(res.scores.columns[:7]) == list(report.SCORE_COLUMNS)
    assert res.params["rank_by"] == "cluster" and (res.scores["ci_method"] == "cluster").all()
    assert res.subject is not None and res.mos_content is not None
    report.write_report(res, tmp_path / "r")
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "MOS per content" in page and "Subject model" in page

    hr = simulate.simulate_ratings(RatingsTruth(3, true_scores=[1.0, 0.0, -1.0]),
                                   RatingsPanel(10),
                                   RatingsDesign(5, method="acr-hr"),
                                   seed=6)
    res = report.analyze(hr.votes, report.AnalysisOptions(bootstrap=0))
    assert res.params["measure"] == "dmos"
    assert "REF" not in set(res.scores["condition"]) and "REF" in set(res.mos["cond"])


def test_pair_table_input_needs_no_raters(tmp_path):
    table = pd.DataFrame({"cond_a": ["A", "A", "B"], "cond_b": ["B", "C", "C"], "wins_a": [60, 70, 55],
                         "ties": [10, 10, 10], "wins_b": [30, 20, 35]})
    res = report.analyze(table)
    assert res.source == "pair-table" and res.screening is None and len(res.raters) == 0
    assert list(res.ranking.table["condition"]) == ["A", "B", "C"]
    assert res.params["bootstrap"] == 0 and res.params["layout"] == "win-tie-loss"
    report.write_report(res, tmp_path / "p")
    assert (tmp_path / "p" / "raters.csv").read_text().startswith("rater,")


def test_bad_frames_and_bad_parameters():
    bad = pd.DataFrame({"cond_a": ["A"], "cond_b": ["A"], "pref": [7], "method": ["pc5"]})
    with pytest.raises(frames.FrameError) as info:
        report.analyze(bad)
    assert len(info.value.problems) >= 3                         # missing columns, off-scale, A vs A
    with pytest.raises(ValueError, match="bootstrap"):
        report.analyze(simulate.simulate_pairwise(PairwiseTruth(3), PairwisePanel(2), PairwiseDesign(2, 30)).votes,
                       report.AnalysisOptions(ci="bootstrap", bootstrap=1))
    for ci in ("both", "hessian"):
        with pytest.raises(ValueError, match="ci must be"):
            report.analyze(simulate.simulate_pairwise(PairwiseTruth(3),
                                                      PairwisePanel(2),
                                                      PairwiseDesign(2, 30)).votes, report.AnalysisOptions(ci=ci))


def test_screening_that_drops_everyone_is_an_error():
    votes = simulate.simulate_pairwise(PairwiseTruth(3), PairwisePanel(3), PairwiseDesign(3, 90), seed=0).votes
    # By default a rule that would drop more than half the panel is not applied (it says so in
    # the screening notes); max_drop_share=None lets it, and then nobody is left.
    with pytest.raises(ValueError, match="dropped every rater"):
        rules = screening.ScreeningRules(drop_least_consistent=None, min_median_watch_ms=10**9, max_drop_share=None)
        report.analyze(votes, report.AnalysisOptions(bootstrap=0, screening_rules=rules))


def test_disconnected_design_is_reported():
    votes = simulate.simulate_pairwise(PairwiseTruth(4),
                                       PairwisePanel(4),
                                       PairwiseDesign(3, 200, pairs=[("C01", "C02"), ("C03", "C04")]),
                                       seed=0).votes
    with pytest.raises(bradley_terry.DisconnectedError):
        report.analyze(votes, report.AnalysisOptions(bootstrap=0, screening_rules=screening.ScreeningRules.none()))


def test_write_report_is_atomic(result, tmp_path, monkeypatch):
    out = tmp_path / "new"

    def boom(_):
        raise RuntimeError("render failed")

    monkeypatch.setattr("analysis.report.files.render_html", boom)  # what write_report calls
    with pytest.raises(RuntimeError):
        report.write_report(result, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []                       # no temporary directory left behind
    monkeypatch.undo()
    report.write_report(result, out)
    old = (out / "ranking.csv").read_text()
    report.write_report(result, out)                             # into an existing directory
    assert (out / "ranking.csv").read_text() == old
    assert sorted(p.name for p in out.iterdir()) == sorted(report.REPORT_FILES)


def test_too_few_raters_fall_back_to_clustered_intervals() -> None:
    from analysis import report, screening, simulate

    sim = simulate.simulate_pairwise(PairwiseTruth(4), PairwisePanel(2), PairwiseDesign(5, 600), seed=1)
    result = report.analyze(sim.votes, report.AnalysisOptions(ci="bootstrap", bootstrap=100,
                                                              screening_rules=screening.ScreeningRules.none()))
    assert result.params["rank_by"] == "cluster" and result.fit.boot is None
    assert any("rater bootstrap was refused" in n for n in result.notes)
    table = result.ranking.table
    assert (table["ci_high"] > table["ci_low"]).all()
    default = report.analyze(sim.votes, report.AnalysisOptions(screening_rules=screening.ScreeningRules.none()))
    assert default.params["rank_by"] == "cluster" and not any("bootstrap" in n for n in default.notes)
    pd.testing.assert_frame_equal(default.scores, result.scores)


def test_ratings_are_ranked_with_the_rater_bootstrap_covariance():
    """Two conditions 2 points apart, raters with large personal offsets: each MOS is uncertain, their
    difference is not (every rater scored both). The covariance separates them; diag(se²) could not."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows = []
    for r in range(40):
        offset = rng.normal(0, 10)
        for c in range(30):
            for cond, mean in (("A", 52.0), ("B", 50.0)):
                rows.append((f"r{r:02d}", f"v{c:02d}", cond, float(np.clip(round(mean + offset + rng.normal(0, 4)),
                                                                               0, 100))))
    df = pd.DataFrame(rows, columns=["rater", "content", "cond", "score"])
    df = df.assign(study="s", session=df["rater"] + "-1", trial=df.groupby("rater").cumcount() + 1,
                   method="slider100", repeat_of=None, gold_expected=None, answered_at=None, watch_ms=10_000,
                   stalls=0)
    res = report.analyze(df, report.AnalysisOptions(ci="bootstrap", bootstrap=500,
                                                    screening_rules=screening.ScreeningRules.none()))
    assert res.ranking.params["method"] == "bootstrap"
    assert res.ranking.groups == [["A"], ["B"]]
    se = res.scores["se"].to_numpy()
    z_independent = abs(res.scores["score"].diff().iloc[1]) / np.sqrt((se**2).sum())
    assert z_independent < 1.96                                  # diag(se²) would have called it a tie
    clustered = report.analyze(df, report.AnalysisOptions(screening_rules=screening.ScreeningRules.none()))  # default
    assert clustered.ranking.params["method"] == "cluster" and clustered.ranking.groups == [["A"], ["B"]]
    se = clustered.scores["se"].to_numpy()
    assert abs(clustered.scores["score"].diff().iloc[1]) / np.sqrt((se**2).sum()) < 1.96
    t_only = report.analyze(df, report.AnalysisOptions(ci="model", screening_rules=screening.ScreeningRules.none()))
    assert t_only.ranking.params["method"] == "t" and t_only.params["rank_by"] == "t"


def test_the_frame_is_validated_once(monkeypatch, pairwise):
    """analyze() validates at the boundary only (validation is the costliest step on big frames)."""
    sim = simulate.simulate_ratings(RatingsTruth(3, true_scores=[1.0, 0.0, -1.0]),
                                    RatingsPanel(12),
                                    RatingsDesign(6, method="acr-hr"),
                                    seed=6)
    calls = []
    real = frames.validate

    def counting(df, kind=None):
        if not isinstance(df, frames.Votes):  # a Votes frame passes through unchecked
            calls.append(len(df))
        return real(df, kind)

    monkeypatch.setattr(frames, "validate", counting)
    report.analyze(pairwise.votes.copy(), report.AnalysisOptions(bootstrap=20))  # a plain frame, as from a CSV
    assert calls == [len(pairwise.votes)]
    calls.clear()
    report.analyze(sim.votes.copy(), report.AnalysisOptions(bootstrap=20, normalize_scores="zscore"))
    assert calls == [len(sim.votes)]
