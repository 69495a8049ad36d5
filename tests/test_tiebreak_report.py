"""Tie-breaking in the report: the objective score next to the vote score, the scorer's
agreement with the votes, and ``panelrank analyze --tiebreak`` / ``--s-obj`` on files."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import report, screening, simulate
from analysis.objective import make_tiebreaker
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth
from study_app.cli import analysis as cli

DEMO = ["source", "enhanced", "noisy", "blurred", "dark", "compressed"]
# noisy and blurred are equally good by construction; every other step is large.
TRUTH = [1.6, 0.8, 0.0, 0.0, -0.8, -1.6]
NONE = screening.ScreeningRules.none()


@pytest.fixture(scope="module")
def tied_votes() -> pd.DataFrame:
    """Votes on the demo's 6 conditions × 4 contents that cannot separate noisy from blurred."""
    sim = simulate.simulate_pairwise(PairwiseTruth(6, true_scores=TRUTH),
                                     PairwisePanel(30),
                                     PairwiseDesign(4, 3000),
                                     seed=11)
    votes = sim.votes.copy()
    to_demo = dict(zip(simulate.condition_names(6), DEMO, strict=True))
    to_content = {c: f"c{i}" for i, c in enumerate(sorted(votes["content"].unique()), 1)}
    for col in ("cond_a", "cond_b"):
        votes[col] = votes[col].map(to_demo).astype("string")
    votes["content"] = votes["content"].map(to_content).astype("string")
    return votes


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _files(tmp_path, votes, demo_clips):
    votes_path, stimuli_path = tmp_path / "votes.csv", tmp_path / "stimuli.csv"
    votes.to_csv(votes_path, index=False)
    # Relative paths resolve against the stimuli CSV's folder.
    rows = [(c, k, os.path.relpath(demo_clips / c / f"{k}.mp4", tmp_path)) for c in ("c1", "c2", "c3", "c4")
            for k in DEMO]
    pd.DataFrame(rows, columns=["content", "condition", "path"]).to_csv(stimuli_path, index=False)
    return votes_path, stimuli_path


def test_s_obj_tiebreak_summary_table_and_html(tied_votes):
    s_obj = {"source": 6.0, "enhanced": 5.0, "noisy": 1.0, "blurred": 2.0, "dark": 0.5, "compressed": 0.1}
    tb = make_tiebreaker(None, s_obj=s_obj)
    res = report.analyze(tied_votes, report.AnalysisOptions(bootstrap=0, screening_rules=NONE, tiebreak=tb))
    groups = [g for g in res.groups if len(g) > 1]
    assert {"noisy", "blurred"} <= set(groups[0])
    table = res.ranking.table.set_index("condition")
    assert table.loc["blurred", "rank"] < table.loc["noisy", "rank"]           # S_obj 2 > 1
    obj = res.objective
    assert obj is not None and obj.label == f"tiebreak:s_obj@{tb.version}" and obj.status.startswith("S_obj")
    assert list(obj.table.columns) == ["rank", "condition", "group", "score", "objective", "tiebreak_value",
                                       "separated_by"]
    assert dict(zip(obj.table["condition"], obj.table["objective"], strict=True)) == s_obj
    assert "blurred > noisy" in obj.separated
    a = obj.agreement
    assert a["n_conditions"] == 6 and a["srocc"] > 0.9 and a["n_votes"] > 1000
    assert a["pairwise_basis"].startswith("sign") and 0.5 < a["pairwise_accuracy"] < 1
    assert 0 < a["n_tied_votes"] < a["n_votes"]
    frame = report.ranking_frame(res)
    assert list(frame.columns[:7]) == list(report.RANKING_COLUMNS)
    assert {"objective", "tiebreak_value"} <= set(frame.columns)
    page = report.render_html(res)
    for needle in ("Objective scorer (tie-breaker)", "SROCC", "pairwise accuracy", "blurred &gt; noisy",
                   obj.label):
        assert needle in page, needle


def test_plain_callable_and_inputs_without_votes():
    class Fake:
        name, version = "fake", "1"

        def __call__(self, conditions):
            return {c: float(ord(c[-1])) for c in conditions}

    sim = simulate.simulate_pairwise(PairwiseTruth(3, true_scores=[0.05, 0.0, -0.05]),
                                     PairwisePanel(6),
                                     PairwiseDesign(5, 300),
                                     seed=2)
    res = report.analyze(sim.votes, report.AnalysisOptions(bootstrap=0, screening_rules=NONE, tiebreak=Fake()))
    assert res.objective.status == "external tie-breaker"
    assert res.objective.agreement["srocc"] == pytest.approx(-1.0)             # the fake prefers C03
    assert len(res.objective.separated) == 2
    table = pd.DataFrame({"cond_a": ["A", "A", "B"], "cond_b": ["B", "C", "C"], "wins_a": [50, 50, 50],
                          "ties": [0, 0, 0], "wins_b": [50, 50, 50]})
    res = report.analyze(table, report.AnalysisOptions(tiebreak=Fake()))
    assert "pairwise_accuracy" not in res.objective.agreement                 # a pair table has no votes
    assert list(res.ranking.table["condition"]) == ["C", "B", "A"]
    assert report.analyze(sim.votes, report.AnalysisOptions(bootstrap=0, screening_rules=NONE)).objective is None


def test_analyze_tiebreak_handcrafted_separates_the_tied_pair(runner, tmp_path, tied_votes, demo_clips):
    votes, stimuli = _files(tmp_path, tied_votes, demo_clips)
    out, cache = tmp_path / "rep", tmp_path / "cache"
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--bootstrap", "0", "--no-screening",
                                              "--tiebreak", "handcrafted", "--stimuli", str(stimuli),
                                              "--scorer-option", "frames=8", "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    ranking = pd.read_csv(out / "ranking.csv")
    label = "tiebreak:handcrafted@1.0+k8+prior"
    by_cond = ranking.set_index("condition")
    assert by_cond.loc["noisy", "group"] == by_cond.loc["blurred", "group"]
    lower = max(("noisy", "blurred"), key=lambda c: by_cond.loc[c, "rank"])
    assert by_cond.loc[lower, "separated_by"] == label                          # the scorer decided the tie
    others = ranking[~ranking["condition"].isin(["noisy", "blurred"])]["separated_by"].iloc[1:]
    assert set(others) == {"votes"}                                             # the rest decided by votes
    assert ranking["objective"].between(0, 1).all()
    page = (out / "report.html").read_text(encoding="utf-8")
    for needle in ("Objective scorer (tie-breaker)", "uncalibrated", "SROCC", "PLCC", "p_sym per content",
                   "pairwise accuracy on votes inside tie groups", label):
        assert needle in page, needle
    for value in ranking["objective"]:
        assert f"{value:.4g}" in page                                           # objective next to BT score
    assert label in res.output and "pairwise accuracy" in res.output
    assert (cache / "scores.sqlite").is_file()


def test_analyze_s_obj_file_and_tiebreak_errors(runner, tmp_path, tied_votes, demo_clips):
    votes, stimuli = _files(tmp_path, tied_votes, demo_clips)
    out = tmp_path / "rep"
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--bootstrap", "0",
                                              "--tiebreak", "handcrafted"])
    assert res.exit_code == 1 and "--tiebreak needs the stimulus paths" in res.output and "--stimuli" in res.output
    assert not out.exists()
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--scorer-option", "frames=8"])
    assert res.exit_code == 1 and "--scorer-option needs --tiebreak" in res.output
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--stimuli", str(stimuli),
                                              "--tiebreak", "nope-vqa"])
    assert res.exit_code == 1 and "no scorer named 'nope-vqa'" in res.output and not out.exists()
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--stimuli", str(stimuli),
                                              "--tiebreak", str(tmp_path / "missing.json")])
    assert res.exit_code == 1 and "no such scorer model" in res.output

    s_obj = tmp_path / "s_obj.csv"
    pd.DataFrame({"condition": DEMO, "s_obj": [6.0, 5.0, 1.0, 2.0, 0.5, 0.1]}).to_csv(s_obj, index=False)
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--bootstrap", "0", "--no-screening",
                                              "--s-obj", str(s_obj)])
    assert res.exit_code == 0, res.output
    ranking = pd.read_csv(out / "ranking.csv").set_index("condition")
    assert ranking.loc["noisy", "separated_by"].startswith("tiebreak:s_obj@")
    assert np.allclose(ranking.loc[DEMO, "objective"], [6.0, 5.0, 1.0, 2.0, 0.5, 0.1])
    pd.DataFrame({"condition": ["source"], "s_obj": ["x"]}).to_csv(s_obj, index=False)
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "r2"), "--s-obj", str(s_obj)])
    assert res.exit_code == 1 and "not a number" in res.output
