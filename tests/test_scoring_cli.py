"""Objective scoring on the command line: score, score-study, fit-scorer, analyze-study,
challenge-score, and the manifest's ``scorer:`` key (tiny 320×180 demo clips)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from analysis.objective import scorer_model as smodel
from analysis.objective.challenge import M_COLUMNS
from study_app import db
from study_app.cli import scoring as acli
from study_app.demo import builder as demo
from study_app.manifest import ManifestError, load
from study_app.studies import get_study

REAL_HEADER = ["video_i", *M_COLUMNS]


def _create(runner, manifest: Path) -> str:
    res = runner.invoke(args=["create-study", str(manifest)])
    assert res.exit_code == 0, res.output
    return res.output.strip().splitlines()[-1]


def _manifest_with(demo_manifest_path: Path, **extra) -> Path:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw.update(extra)
    demo_manifest_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return demo_manifest_path


def _fill(app, slug: str, n_raters: int = 12) -> int:
    with app.app_context(), db.transaction(app) as session:
        return demo.fill_with_simulated_votes(session, get_study(session, slug), n_raters=n_raters)


# --------------------------------------------------------------------------- score


def test_score_prints_json_and_p_sym_is_order_independent(runner, demo_clips):
    a, b = demo_clips / "c1" / "source.mp4", demo_clips / "c1" / "noisy.mp4"
    res = runner.invoke(args=["score", str(a), str(b), "--scorer", "handcrafted", "--option", "frames=8"])
    assert res.exit_code == 0, res.output
    ab = json.loads(res.stdout)
    assert ab["scorer"] == "handcrafted" and ab["version"] == "1.0+k8+prior" and ab["calibrated"] is False
    assert len(ab["aux_a"]) == len(ab["aux_b"]) == 11
    assert ab["p"] == pytest.approx((ab["p_ab"] + 1 - ab["p_ba"]) / 2)
    assert ab["p"] > 0.5                                            # clean beats noisy
    ba = json.loads(CliRunner().invoke(acli.score_command, [str(b), str(a), "--option", "frames=8"]).stdout)
    assert ab["p"] + ba["p"] == pytest.approx(1.0, abs=1e-12)
    assert ab["aux_a"] == pytest.approx(ba["aux_b"])

    res = runner.invoke(args=["score", str(a), str(b), "--scorer", "no-such-vqa"])
    assert res.exit_code == 1 and "no scorer named 'no-such-vqa'" in res.output
    res = runner.invoke(args=["score", str(a), str(b), "--option", "bogus=1"])
    assert res.exit_code == 1 and "bad option" in res.output and "bogus" in res.output


# --------------------------------------------------------------------------- score-study


def test_score_study_scores_everything_then_hits_the_cache(app, runner, demo_manifest_path, tmp_path):
    slug = _create(runner, demo_manifest_path)
    out, pairs_out = tmp_path / "scores.csv", tmp_path / "pairs.csv"
    res = runner.invoke(args=["score-study", slug, "--out", str(out), "--pairs-out", str(pairs_out),
                              "--option", "frames=8"])
    assert res.exit_code == 0, res.output
    assert "stimuli: 24 (24 scored, 0 cached)" in res.output
    assert "pairs: 60 needed by the design" in res.output             # all_pairs: 15 pairs × 4 contents
    assert "scoring [" in res.output                                  # the progress bar
    scores = pd.read_csv(out)
    assert len(scores) == 24 and {"content", "condition", "sha256", "aux_1", "aux_11", "sharpness"} <= set(scores)
    pairs = pd.read_csv(pairs_out)
    assert len(pairs) == 60 and np.allclose(pairs["p"], (pairs["p_ab"] + 1 - pairs["p_ba"]) / 2)
    assert (Path(app.config["INSTANCE_DIR"]) / "score-cache" / "scores.sqlite").is_file()

    rerun = runner.invoke(args=["score-study", slug, "--option", "frames=8"])
    assert rerun.exit_code == 0, rerun.output
    assert "stimuli: 24 (0 scored, 24 cached)" in rerun.output
    # Same numbers from the cache; the mean p_sym table ranks the clean source above heavy compression.
    assert rerun.output.split("pairs:")[1] == res.output.split("pairs:")[1].split("wrote")[0]
    table = rerun.output.split("mean p_sym")[1]
    assert table.index("source") < table.index("compressed")

    res = runner.invoke(args=["score-study", "no-such-study"])
    assert res.exit_code == 1 and "no study with slug 'no-such-study'" in res.output


# --------------------------------------------------------------------------- manifest scorer


def test_manifest_scorer_is_validated_stored_and_used_by_default(app, runner, demo_manifest_path):
    raw = yaml.safe_load(demo_manifest_path.read_text())
    bad = demo_manifest_path.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump({**raw, "scorer": {"name": "nope-vqa"}, "method": "pc99"}, sort_keys=False))
    with pytest.raises(ManifestError) as info:
        load(bad, probe_media=False)
    problems = "\n".join(info.value.problems)
    assert "scorer.name: unknown scorer 'nope-vqa'" in problems and "handcrafted" in problems
    assert "unknown method" in problems                                # listed with the others
    res = runner.invoke(args=["create-study", str(bad)])
    assert res.exit_code == 1 and "unknown scorer 'nope-vqa'" in res.output
    bad.write_text(yaml.safe_dump({**raw, "scorer": {"name": "handcrafted", "options": {"bogus": 1}}}))
    with pytest.raises(ManifestError, match="rejects its options"):
        load(bad, probe_media=False)

    slug = _create(runner, _manifest_with(demo_manifest_path, scorer={"name": "handcrafted",
                                                                      "options": {"frames": 6}}))
    with app.app_context(), db.transaction(app) as session:
        assert get_study(session, slug).manifest["scorer"] == {"name": "handcrafted", "options": {"frames": 6}}
    res = runner.invoke(args=["score-study", slug])
    assert res.exit_code == 0, res.output
    assert "scorer handcrafted 1.0+k6+prior" in res.output


# --------------------------------------------------------------------------- fit-scorer + analyze-study


def test_fit_scorer_on_simulated_votes_then_tiebreak_a_study(app, runner, demo_manifest_path, tmp_path,
                                                             monkeypatch):
    # noisy and blurred equally good by construction: the votes cannot separate them.
    monkeypatch.setitem(demo.SIMULATED_TRUTH, "blurred", demo.SIMULATED_TRUTH["noisy"])
    slug = _create(runner, _manifest_with(demo_manifest_path, scorer={"name": "handcrafted",
                                                                      "options": {"frames": 8}}))
    assert _fill(app, slug) > 0
    model_path = tmp_path / "head.json"
    res = runner.invoke(args=["fit-scorer", slug, "--out", str(model_path)])
    assert res.exit_code == 0, res.output
    assert "held-out accuracy 0." in res.output and "cross-fitted accuracy 0." in res.output
    model = smodel.load_scorer_model(model_path)
    assert model.base == {"name": "handcrafted", "options": {"frames": 8}} and model.kind == "logistic"
    assert f"version {model.version}" in res.output
    assert 0.5 < model.report["crossfit_accuracy"] <= 1 and model.report["n_votes"] > 100
    # Cross-fitting: every condition pair's head never saw that pair.
    for pair, fold in model.crossfit.fold_of_pair.items():
        assert model.crossfit.head_for(*pair) is model.crossfit.heads[fold]

    # Default tie-breaker: the manifest's scorer.
    out = tmp_path / "report"
    res = runner.invoke(args=["analyze-study", slug, "--out", str(out), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    ranking = pd.read_csv(out / "ranking.csv")
    tied = ranking.set_index("condition").loc[["noisy", "blurred"], "group"]
    assert tied.nunique() == 1                                         # one tie group
    labels = set(ranking["separated_by"])
    assert "tiebreak:handcrafted@1.0+k8+prior" in labels
    assert ranking["objective"].notna().all()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Objective scorer (tie-breaker)" in page and "uncalibrated" in page

    # The fitted, cross-fitted model as the tie-breaker.
    res = runner.invoke(args=["analyze-study", slug, "--out", str(out), "--bootstrap", "0",
                              "--tiebreak", str(model_path)])
    assert res.exit_code == 0, res.output
    ranking = pd.read_csv(out / "ranking.csv")
    label = f"tiebreak:handcrafted@1.0+k8+prior+crossfit.{model.version}"
    assert label in set(ranking["separated_by"])
    assert "cross-fitted" in (out / "report.html").read_text(encoding="utf-8")

    res = runner.invoke(args=["analyze-study", slug, "--out", str(out), "--bootstrap", "0", "--no-tiebreak"])
    assert res.exit_code == 0, res.output
    assert not any(str(s).startswith("tiebreak:") for s in pd.read_csv(out / "ranking.csv")["separated_by"])


def test_fit_scorer_from_a_votes_file_and_head_kinds(app, runner, demo_manifest_path, tmp_path, monkeypatch):
    slug = _create(runner, demo_manifest_path)
    _fill(app, slug)
    votes = tmp_path / "votes.csv"
    assert runner.invoke(args=["export", slug, "--out", str(votes)]).exit_code == 0
    clips_dir = Path(yaml.safe_load(demo_manifest_path.read_text())["stimuli"][0]["path"]).parents[1]
    stimuli = tmp_path / "stimuli.csv"
    pd.DataFrame([(c, k, str(clips_dir / c / f"{k}.mp4")) for c in ("c1", "c2", "c3", "c4")
                  for k in ("source", "enhanced", "dark", "noisy", "blurred", "compressed")],
                 columns=["content", "condition", "path"]).to_csv(stimuli, index=False)

    res = runner.invoke(args=["fit-scorer", str(votes)])
    assert res.exit_code == 2 and "--stimuli" in res.output
    res = runner.invoke(args=["fit-scorer", str(votes), "--stimuli", str(stimuli), "--option", "frames=8"])
    assert res.exit_code == 0, res.output
    written = sorted((Path(app.config["INSTANCE_DIR"]) / "scorers").glob("votes.logistic.*.json"))
    assert len(written) == 1 and smodel.load_scorer_model(written[0]).source == "votes"

    if importlib.util.find_spec("torch") is not None:
        res = runner.invoke(args=["fit-scorer", slug, "--kind", "mlp", "--option", "frames=8", "--folds", "2",
                                  "--out", str(tmp_path / "mlp.json")])
        assert res.exit_code == 0, res.output
        assert smodel.load_scorer_model(tmp_path / "mlp.json").kind == "mlp"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    res = runner.invoke(args=["fit-scorer", slug, "--kind", "mlp", "--out", str(tmp_path / "x.json")])
    assert res.exit_code == 1 and "--kind mlp needs torch" in res.output
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------- challenge-score


def test_challenge_score_writes_both_layouts_and_s_values(runner, demo_clips, tmp_path):
    c = demo_clips
    real = tmp_path / "real.csv"
    pd.DataFrame({
        "condition": ["enhanced", "enhanced", "noisy", "noisy"],
        "video": ["001", "002", "001", "002"],
        "output_path": [c / "c1/enhanced.mp4", c / "c2/enhanced.mp4", c / "c1/noisy.mp4", c / "c2/noisy.mp4"],
        "input_path": [c / "c1/source.mp4", c / "c2/source.mp4", c / "c1/source.mp4", c / "c2/source.mp4"],
    }).to_csv(real, index=False)
    synth = tmp_path / "synth.csv"
    pd.DataFrame({
        "condition": ["enhanced", "noisy"], "video": ["s1", "s1"],
        "output_path": [c / "c3/enhanced.mp4", c / "c3/noisy.mp4"],
        "target_path": [c / "c3/source.mp4", c / "c3/source.mp4"],
    }).to_csv(synth, index=False)
    out = tmp_path / "challenge"
    res = runner.invoke(args=["challenge-score", "--real", str(real), "--synth", str(synth), "--out", str(out),
                              "--option", "frames=8"])
    assert res.exit_code == 0, res.output
    for cond in ("enhanced", "noisy"):
        rows = pd.read_csv(out / "real" / f"{cond}.csv", dtype={"video_i": str})
        assert list(rows.columns) == REAL_HEADER and list(rows["video_i"]) == ["001", "002"]
        assert list(pd.read_csv(out / "synth" / f"{cond}.csv").columns) == ["video_i", "rmse"]
    s = pd.read_csv(out / "s_obj.csv").set_index("condition")
    assert list(s.columns) == ["s_real", "s_synth", "s_obj", "n_real", "n_synth"]
    # S_real by hand from the written file: a_4 (m_5) enters inverted.
    m = pd.read_csv(out / "real" / "noisy.csv")[list(M_COLUMNS)].to_numpy()
    by_hand = np.mean((m.sum(axis=1) - 2 * m[:, 4] + 1) / 12)
    assert s.loc["noisy", "s_real"] == pytest.approx(by_hand, abs=1e-5)
    rmse = pd.read_csv(out / "synth" / "noisy.csv")["rmse"].iloc[0]
    assert s.loc["noisy", "s_synth"] == pytest.approx(1 / rmse, rel=1e-5)
    assert np.allclose(s["s_obj"], s["s_real"] * s["s_synth"])
    assert list(s["n_real"]) == [2, 2] and list(s["n_synth"]) == [1, 1]

    res = runner.invoke(args=["challenge-score", "--out", str(out)])
    assert res.exit_code == 2 and "--real" in res.output
    pd.DataFrame({"condition": ["x"], "video": ["1"], "output_path": ["missing.mp4"]}).to_csv(real, index=False)
    res = runner.invoke(args=["challenge-score", "--real", str(real), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 1 and "input_path" in res.output and not (tmp_path / "o2").exists()


def test_score_study_with_a_command_scorer_scores_pairs_in_both_orders(app, runner, demo_manifest_path, tmp_path):
    aux = json.dumps([0.5] * 11)
    script = tmp_path / "vqa.sh"
    script.write_text(f'case "$1" in *source*) p=0.9;; *) p=0.4;; esac\necho "{{\\"p\\": $p, '
                      f'\\"aux_a\\": {aux}, \\"aux_b\\": {aux}}}"\n')
    slug = _create(runner, demo_manifest_path)
    cmd = json.dumps(["sh", str(script), "{a}", "{b}"])
    res = runner.invoke(args=["score-study", slug, "--scorer", "command", "--option", f"command={cmd}",
                              "--option", "version=t1", "--pairs-out", str(tmp_path / "pairs.csv")])
    assert res.exit_code == 0, res.output
    assert "pairs: 60 needed by the design; ordered calls: 120 scored, 0 cached" in res.output
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    with_source = pairs[(pairs["cond_a"] == "source") | (pairs["cond_b"] == "source")]
    assert len(with_source) == 20 and set(pairs["p"].round(6)) <= {0.25, 0.5, 0.75}
    rerun = runner.invoke(args=["score-study", slug, "--scorer", "command", "--option", f"command={cmd}",
                                "--option", "version=t1"])
    assert "ordered calls: 0 scored, 120 cached" in rerun.output
