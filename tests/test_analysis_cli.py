"""`panelrank analyze` / `panelrank simulate`, run directly through click's CliRunner."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import frames, report
from study_app.cli import analysis as cli
from tests.shared_data import DATA

NTIRE_FINAL = DATA / "ntire2025-vqe" / "final.txt"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_commands_are_exposed_for_the_panelrank_group():
    from study_app.cli.commands import COMMANDS, load

    analysis_commands = [name for name, entry in COMMANDS.items() if entry.module == cli.__name__]
    assert analysis_commands == ["analyze", "simulate", "plan-votes"]
    assert [load(name).name for name in analysis_commands] == ["analyze", "simulate", "plan-votes"]


def test_simulate_then_analyze(runner, tmp_path):
    votes, truth, out = tmp_path / "v.csv", tmp_path / "t.csv", tmp_path / "rep"
    res = runner.invoke(cli.simulate_command, ["--conditions", "4", "--contents", "8", "--votes", "1200",
                                               "--raters", "12", "--repeats", "2", "--gold", "2", "--seed", "3",
                                               "--out", str(votes), "--truth", str(truth)])
    assert res.exit_code == 0, res.output
    df = frames.read_votes(votes)                                   # a valid frame
    assert frames.detect_kind(df) == "pairwise" and df["rater"].nunique() == 12
    assert len(df) == 1200 + 12 * (2 + 2)
    t = pd.read_csv(truth)
    assert list(t.columns[:2]) == ["condition", "score"] and len(t) == 4
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(out), "--ci", "bootstrap", "--bootstrap", "50",
                                              "--ties", "rao-kupper", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(report.REPORT_FILES)
    assert "rao-kupper" in (out / "report.html").read_text(encoding="utf-8")
    ranked = pd.read_csv(out / "ranking.csv")["condition"].tolist()
    assert ranked == t.sort_values("score", ascending=False)["condition"].tolist()
    assert (pd.read_csv(out / "scores.csv")["ci_method"] == "bootstrap").all()
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "default"), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert (pd.read_csv(tmp_path / "default" / "scores.csv")["ci_method"] == "cluster").all()   # the default


def test_simulate_ratings_scale_parquet(runner, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "r.parquet"
    res = runner.invoke(cli.simulate_command, ["--conditions", "3", "--contents", "4", "--votes", "120",
                                               "--raters", "6", "--method", "acr5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert frames.detect_kind(frames.read_votes(out)) == "ratings"
    res = runner.invoke(cli.analyze_command, [str(out), "--out", str(tmp_path / "rep"), "--bootstrap", "0",
                                              "--no-screening"])
    assert res.exit_code == 0, res.output
    assert (pd.read_csv(tmp_path / "rep" / "scores.csv")["ci_method"] == "cluster").all()
    res = runner.invoke(cli.analyze_command, [str(out), "--out", str(tmp_path / "t"), "--ci", "model",
                                              "--no-screening"])
    assert res.exit_code == 0, res.output
    assert (pd.read_csv(tmp_path / "t" / "scores.csv")["ci_method"] == "t").all()


def test_bad_csv_lists_every_problem_and_writes_nothing(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"rater": ["r1", None], "cond_a": ["A", "B"], "cond_b": ["A", "C"], "pref": [9, 1],
                  "method": ["pc5", "nope"]}).to_csv(bad, index=False)
    out = tmp_path / "rep"
    res = runner.invoke(cli.analyze_command, [str(bad), "--out", str(out)])
    assert res.exit_code != 0
    for problem in ("missing column", "'rater' is empty", "unknown test method", "outside its scale",
                    "cond_a equals cond_b"):
        assert problem in res.output, problem
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_missing_file_and_bad_options(runner, tmp_path):
    res = runner.invoke(cli.analyze_command, [str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "no such file" in res.output
    votes = tmp_path / "v.csv"
    runner.invoke(cli.simulate_command, ["--conditions", "3", "--contents", "2", "--votes", "60", "--raters", "3",
                                         "--out", str(votes)])
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "o"), "--bootstrap", "1"])
    assert res.exit_code == 2 and "--bootstrap" in res.output
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "o"), "--bootstrap", "0",
                                              "--ci", "bootstrap"])
    assert res.exit_code == 2 and "--bootstrap" in res.output
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "o"), "--ci", "both"])
    assert res.exit_code == 2 and "--ci" in res.output
    res = runner.invoke(cli.analyze_command, [str(votes), "--out", str(tmp_path / "o"), "--ties", "nope"])
    assert res.exit_code == 2
    res = runner.invoke(cli.simulate_command, ["--method", "2afc", "--tie-rate", "0.3", "--votes", "30",
                                               "--contents", "2", "--raters", "2", "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 1 and "tie_rate" in res.output and not (tmp_path / "x.csv").exists()
    res = runner.invoke(cli.simulate_command, ["--out", str(tmp_path / "x.json")])
    assert res.exit_code == 2


def test_pair_table_and_ntire_file_inputs(runner, tmp_path):
    table = tmp_path / "pairs.csv"
    pd.DataFrame({"cond_a": ["A", "A", "B"], "cond_b": ["B", "C", "C"], "wins_a": [60, 70, 55],
                  "ties": [10, 10, 10], "wins_b": [30, 20, 35]}).to_csv(table, index=False)
    res = runner.invoke(cli.analyze_command, [str(table), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "p" / "ranking.csv")["condition"].tolist() == ["A", "B", "C"]
    broken = tmp_path / "broken.csv"
    pd.DataFrame({"cond_a": ["A"], "cond_b": ["B"], "what": [1]}).to_csv(broken, index=False)
    res = runner.invoke(cli.analyze_command, [str(broken), "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "pair table" in res.output and not (tmp_path / "b").exists()
    if not NTIRE_FINAL.is_file():
        pytest.skip("NTIRE data not present")
    res = runner.invoke(cli.analyze_command, [str(NTIRE_FINAL), "--out", str(tmp_path / "n")])
    assert res.exit_code == 0, res.output
    ranked = pd.read_csv(tmp_path / "n" / "ranking.csv")["condition"].tolist()
    assert ranked == ["SU", "DE", "BA", "MA", "LU", "WI", "IN"]
    assert "published" in (tmp_path / "n" / "report.html").read_text(encoding="utf-8")


def test_analysis_never_imports_the_web_stack():
    """DESIGN.md: ``analysis`` is usable alone — no Flask, no SQLAlchemy, in any of its modules."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, analysis\n"
        "for m in pkgutil.walk_packages(analysis.__path__, 'analysis.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy', 'study_app'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""


def test_plan_votes_from_assumptions(runner):
    from analysis import planning

    res = runner.invoke(cli.plan_votes_command, ["--delta", "0.2", "--tie-rate", "0.2", "--power", "0.9",
                                                 "--conditions", "12"])
    assert res.exit_code == 0, res.output
    per_pair = planning.votes_needed(0.2, power=0.9, tie_rate=0.2)
    holm = planning.votes_needed(0.2, power=0.9, tie_rate=0.2, comparisons=66)
    assert f"): {per_pair:,}" in res.output and f"(worst case α/66): {holm:,} per pair" in res.output
    assert f"adjacent pairs (11): {11 * per_pair:,}" in res.output
    assert f"all pairs (66): {66 * per_pair:,}" in res.output
    res = runner.invoke(cli.plan_votes_command, [])
    assert res.exit_code == 2 and "--delta" in res.output
    res = runner.invoke(cli.plan_votes_command, ["--delta", "0"])
    assert res.exit_code == 2


def test_plan_votes_from_a_pilot(runner, tmp_path):
    votes = tmp_path / "pilot.csv"
    res = runner.invoke(cli.simulate_command, ["--conditions", "4", "--contents", "6", "--votes", "1500",
                                               "--raters", "20", "--seed", "1", "--out", str(votes)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli.plan_votes_command, ["--pilot", str(votes)])
    assert res.exit_code == 0, res.output
    assert "pilot: 1,500 votes of 20 raters; tie rate" in res.output
    assert res.output.count(" > ") == 3 and "total over adjacent pairs:" in res.output
    res = runner.invoke(cli.plan_votes_command, ["--pilot", str(votes), "--delta", "0.3", "--conditions", "4"])
    assert res.exit_code == 0, res.output
    assert "votes per pair to separate two conditions 0.3 BT apart" in res.output and "all pairs (6)" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    res = runner.invoke(cli.plan_votes_command, ["--pilot", str(bad)])
    assert res.exit_code == 1 and "Error" in res.output
