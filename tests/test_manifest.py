"""Manifest validation: every problem reported at once, nothing written on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study_app.manifest import ManifestError, load, probe


def _write(tmp_path: Path, raw: dict, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def raw(demo_manifest_path: Path) -> dict:
    return yaml.safe_load(demo_manifest_path.read_text())


def test_demo_manifest_is_valid(demo_manifest_path: Path) -> None:
    vm = load(demo_manifest_path)
    assert vm.slug == "demo"
    assert len(vm.stimuli) == 24
    first = vm.stimuli[0].media
    assert first is not None
    assert (first.width, first.height) == (320, 180)
    assert first.fps == pytest.approx(25)
    assert first.duration_s == pytest.approx(1.0, abs=0.05)
    assert vm.settings["reasons"] == ["colours", "brightness", "skin tone"]
    assert vm.spec.pairwise and vm.spec.votes_per_item == 8


def test_five_mistakes_give_five_problems(raw: dict, tmp_path: Path) -> None:
    raw["method"] = "pc9"                                   # 1 unknown method
    raw["conditions"].append({"id": "dark"})                # 2 duplicate id
    raw["stimuli"][0]["path"] = "/nonexistent/clip.mp4"     # 3 missing file
    raw["panel"] = {"name": "facebook"}                     # 4 unknown panel
    raw["trials_per_session"] = 0                           # 5 out of range
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    problems = err.value.problems
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    for needle in ("pc9", "duplicate condition id 'dark'", "/nonexistent/clip.mp4", "facebook",
                   "trials_per_session"):
        assert needle in text
    assert all(p.startswith("manifest.yaml: ") for p in problems)


def test_missing_cell_and_unknown_condition(raw: dict, tmp_path: Path) -> None:
    raw["stimuli"] = [s for s in raw["stimuli"] if not (s["content"] == "c2" and s["condition"] == "noisy")]
    raw["stimuli"].append({"content": "c1", "condition": "ghost", "path": raw["stimuli"][0]["path"]})
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    text = "\n".join(err.value.problems)
    assert "content 'c2' has no file for condition(s) noisy" in text
    assert "condition 'ghost' is not listed" in text


def test_stimuli_from_csv(raw: dict, tmp_path: Path) -> None:
    rows = ["content,condition,path"] + [f"{s['content']},{s['condition']},{s['path']}" for s in raw["stimuli"]]
    (tmp_path / "stimuli.csv").write_text("\n".join(rows) + "\n")
    raw["stimuli"] = "stimuli.csv"
    vm = load(_write(tmp_path, raw))
    assert len(vm.stimuli) == 24


def test_csv_problems_name_the_file_and_row(raw: dict, tmp_path: Path) -> None:
    (tmp_path / "stimuli.csv").write_text("content,condition,path\nc1,source,\nc1,source,missing.mp4\n")
    raw["stimuli"] = "stimuli.csv"
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    text = "\n".join(err.value.problems)
    assert "stimuli.csv: row 2: missing path" in text
    assert "stimuli.csv: row 3.path" in text


def test_csv_without_required_columns(raw: dict, tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("content,file\nc1,a.mp4\n")
    raw["stimuli"] = "s.csv"
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert any("missing column(s): condition, path" in p for p in err.value.problems)


def test_not_a_video(raw: dict, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    raw["stimuli"][3]["path"] = str(bogus)
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert len(err.value.problems) == 1
    assert "bogus.mp4" in err.value.problems[0] and "cannot be decoded" in err.value.problems[0]


def test_resolution_and_duration_must_agree_within_a_content(raw: dict, tmp_path: Path) -> None:
    from study_app import clips

    other = clips.make_clip(tmp_path / "big.mp4", "c1", None, width=160, height=96, seconds=2, fps=25)
    assert other.width == 160
    raw["stimuli"][1]["path"] = str(tmp_path / "big.mp4")
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    text = "\n".join(err.value.problems)
    assert "content 'c1'" in text and "resolution" in text and "duration" in text


def test_design_needs_reference_for_vs_reference(raw: dict, tmp_path: Path) -> None:
    for c in raw["conditions"]:
        c["role"] = "submission"
    raw["design"] = {"pairs": "vs_reference"}
    raw.pop("gold")
    raw.pop("training")
    raw["gold_per_session"] = 0
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert any("reference" in p for p in err.value.problems)


def test_gold_off_scale_and_unknown_names(raw: dict, tmp_path: Path) -> None:
    raw["gold"] = [{"content": "c9", "cond_a": "source", "cond_b": "nope", "expected": 2}]
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    text = "\n".join(err.value.problems)
    assert "content 'c9'" in text and "condition 'nope'" in text


def test_unknown_fields_and_bad_yaml(raw: dict, tmp_path: Path) -> None:
    raw["colour"] = "blue"
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert any("colour: unknown field" in p for p in err.value.problems)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load(bad)
    with pytest.raises(ManifestError, match="no such file"):
        load(tmp_path / "absent.yaml")


def test_rating_method_rejects_votes_per_pair(raw: dict, tmp_path: Path) -> None:
    raw["method"] = "acr5"
    raw["gold"] = [{"content": "c1", "condition": "compressed", "expected": 1}]
    raw.pop("training")
    raw.pop("reasons")
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert any("votes_per_pair: does not apply to method 'acr5'" in p for p in err.value.problems)
    raw["votes_per_stimulus"] = raw.pop("votes_per_pair")
    vm = load(_write(tmp_path, raw))
    assert not vm.spec.pairwise
    assert vm.settings["reasons"] == []


def test_probe_reports_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="cannot be decoded"):
        probe(str(empty))
