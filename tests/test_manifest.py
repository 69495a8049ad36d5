"""Manifest validation: every problem reported at once, nothing written on failure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from analysis.video import probe
from study_app.manifest import ManifestError, load


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
    from study_app.demo.clipset import make_clip

    other = make_clip(tmp_path / "big.mp4", "c1", None, width=160, height=96, seconds=2, fps=25)
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
    raw["gold_per_session"] = 0  # the one gold stimulus is voted 8 times: no plan gives every session gold
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
        probe(str(empty), decode_first=True)


def test_tricky_manifest_lists_each_problem_once(raw: dict, tmp_path: Path, demo_clips: Path) -> None:
    """CSV with a BOM and a duplicate row, a URL that cannot be fetched, a file that is not a
    video, wrong-type fields: every mistake once, none of them hiding or repeating another."""
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all" * 50)
    rows = [f"{s['content']},{s['condition']},{s['path']}" for s in raw["stimuli"]]
    rows[5] = rows[5].rsplit(",", 1)[0] + ",http://127.0.0.1:9/clip.mp4"  # 1 nothing listens on port 9
    rows[6] = rows[6].rsplit(",", 1)[0] + f",{bogus}"                     # 2 exists, is not a video
    rows.append(rows[0])                                                  # 3 duplicate row
    (tmp_path / "stimuli.csv").write_text("\ufeffcontent, condition ,path\n" + "\n".join(rows) + "\n")
    raw["stimuli"] = "stimuli.csv"
    raw["votes_per_pair"] = "8"                                           # 4 text, not a number
    raw["environment"]["allow_mobile"] = "no"                            # 5 not a boolean
    raw["gold"][1]["expected"] = 7                                       # 6 off the pc5 scale
    raw["design"] = {"pairs": "random_k", "k": 99}                       # 7 more than the 15 pairs
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    problems = err.value.problems
    assert len(problems) == 7, "\n".join(problems)
    text = "\n".join(problems)
    assert "stimuli.csv: row 26: duplicate stimulus for content 'c1', condition 'source'" in text
    assert "http://127.0.0.1:9/clip.mp4': cannot be fetched" in text
    assert "bogus.mp4': cannot be decoded as video" in text
    assert "votes_per_pair: must be a whole number (got '8')" in text
    assert "environment.allow_mobile: must be true or false" in text
    assert "gold[1]: expected 7 is off the pc5 scale -2..2" in text
    assert "design.k: k=99 must be between 1 and the number of condition pairs (15)" in text


def test_design_problems_are_not_consequences_of_reported_ones(raw: dict, tmp_path: Path) -> None:
    raw["repeats_per_session"] = -1          # reported once, not again by the design check
    raw["conditions"][0]["role"] = "refrence"  # the typo, not "vs_reference needs a reference"
    raw["design"] = {"pairs": "vs_reference"}
    raw["gold"][0]["cond_b"] = "source"      # a pair of one condition with itself
    raw["gold_per_session"] = 3              # more than the 2 gold items
    raw.pop("name")                          # no name: the slug is given, so no slug problem
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    problems = err.value.problems
    assert len(problems) == 5, "\n".join(problems)
    text = "\n".join(problems)
    for needle in ("repeats_per_session: must be between 0 and 500 (got -1)", "conditions[0].role: unknown role",
                   "gold[0]: compares condition 'source' with itself", "gold_per_session=3 exceeds the 2",
                   "name: required"):
        assert needle in text, needle


def test_missing_name_and_slug_is_one_problem(raw: dict, tmp_path: Path) -> None:
    raw.pop("name")
    raw.pop("slug")
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    assert [p.split(": ")[1] for p in err.value.problems] == ["name"]


def test_sizes_the_database_holds_and_known_languages(raw: dict, tmp_path: Path) -> None:
    raw["name"] = "n" * 201
    raw["conditions"][1]["label"] = "l" * 201
    raw["reasons"] = [f"reason number {i} with some words" for i in range(8)]
    raw["language"] = "xx"
    raw["gold"].append({"content": "c1", "cond_a": "source", "cond_b": "dark", "expected": 2, "colour": "red"})
    with pytest.raises(ManifestError) as err:
        load(_write(tmp_path, raw))
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 5, text
    for needle in ("name: at most 200 characters (got 201)", "conditions[1].label: at most 200 characters",
                   "reasons: together at most 200 characters", "language: no rater text catalog 'xx'; available: en",
                   "gold[2]: unknown field(s) colour"):
        assert needle in text, needle


def test_docs_and_example_cover_every_field() -> None:
    """docs/manifest.md documents every field the validator accepts; the example shows each."""
    from study_app.manifest import KNOWN_KEYS

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "manifest.md").read_text()
    example = (root / "study_app" / "demo" / "manifest.yaml").read_text()
    nested = ["design.pairs", "design.k", "panel.name", "panel.completion_code", "panel.completion_url",
              "panel.screen_out_code", "panel.screen_out_url", "environment.min_width", "min_height",
              "environment.allow_mobile", "feedback", "tolerance", "expected", "cond_a", "cond_b", "label", "role"]
    for key in sorted(KNOWN_KEYS):
        assert f"| `{key}`" in docs or f"| `{key}." in docs, f"docs/manifest.md has no row for `{key}`"
    for key in nested:
        assert re.search(rf"\b{re.escape(key)}\b", docs), f"docs/manifest.md does not mention {key}"
    for key in sorted(KNOWN_KEYS) + [k.split(".")[-1] for k in nested]:
        assert re.search(rf"(^|[\s{{,]){re.escape(key)}:", example, re.MULTILINE), f"the example lacks {key}"


def test_commented_fields_of_the_example_validate(raw: dict, tmp_path: Path) -> None:
    """The optional fields shown commented out in the example are themselves valid."""
    raw["design"] = {"pairs": "random_k", "k": 8}
    raw["panel"] = {"name": "prolific", "completion_code": "C1A2B3D4", "screen_out_code": "NOFIT01",
                    "completion_url": "https://app.prolific.com/submissions/complete?cc={code}",
                    "screen_out_url": "https://app.prolific.com/submissions/complete?cc={code}"}
    raw["scorer"] = {"name": "handcrafted", "options": {"frames": 16}}
    vm = load(_write(tmp_path, raw), probe_media=False)
    assert vm.spec.k == 8 and vm.settings["scorer"]["name"] == "handcrafted"
