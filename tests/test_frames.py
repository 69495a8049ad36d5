"""The vote-frame schema: ids are text (``NA``/``None`` are names), in Unicode NFC."""

from __future__ import annotations

import contextlib
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import aggregate, frames, report
from analysis import bradley_terry as bt
from analysis.objective.inputs import read_s_obj_csv, stimuli_frame
from tests.shared_data import CASES as SHARED_CASES

CASES = SHARED_CASES / "names-that-look-missing"
NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
HEADER = ",".join(frames.PAIRWISE_COLUMNS)


def write(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "others"), [("NA", ["B", "C"]), ("None", ["AutoAdjust", "Lightroom"])])
def test_a_condition_named_like_a_missing_value_is_read_and_fitted(name, others):
    votes = frames.read_votes(CASES / f"condition_named_{name}.csv")
    assert frames.conditions(votes) == sorted([*others, name])
    assert votes[["cond_a", "cond_b"]].notna().all().all()
    assert votes["repeat_of"].isna().all() and votes["gold_expected"].isna().all()  # empty optional cells
    fit = bt.fit(votes, ci="hessian")
    assert name in fit.conditions and np.isfinite(fit.scores).all()
    # `panelrank analyze` reads its input the same way.
    table, published = report.read_input(CASES / f"condition_named_{name}.csv")
    assert published is None and frames.conditions(table) == sorted([*others, name])


def test_every_id_column_is_text(tmp_path):
    # study, rater, session, content, conditions and reason named like missing values.
    path = write(tmp_path / "v.csv",
                 "NA,null,None,1,nan,N/A,NULL,1,pc5,n/a,a,,,,10000,0",
                 "NA,null,None,2,nan,NULL,N/A,-2,pc5,None,b,,,,10000,0")
    votes = frames.read_votes(path)
    assert votes.loc[0, ["study", "rater", "session", "content", "cond_a", "cond_b", "reason"]].tolist() == [
        "NA", "null", "None", "nan", "N/A", "NULL", "n/a"]
    assert votes.loc[1, "reason"] == "None"
    assert frames.conditions(votes) == ["N/A", "NULL"]
    back = frames.read_votes(frames.write_votes(votes, tmp_path / "back.csv"))  # a round trip keeps them
    pd.testing.assert_frame_equal(back, votes)


def test_files_with_the_old_scale_column_are_read_with_method(tmp_path):
    """Votes files written before the column was renamed (``scale`` → ``method``) still load."""
    votes = frames.read_votes(write(tmp_path / "v.csv", "s,r1,r1-1,1,c,A,B,1,pc5,,a,,,,10000,0"))
    old = tmp_path / "old.csv"
    old.write_text((tmp_path / "v.csv").read_text().replace(",method,", ",scale,", 1))
    assert "scale" in old.read_text().splitlines()[0]
    pd.testing.assert_frame_equal(frames.read_votes(old), votes)
    votes.rename(columns={"method": "scale"}).to_parquet(tmp_path / "old.parquet")
    back = frames.read_votes(tmp_path / "old.parquet")
    assert list(back.columns) == list(votes.columns) and back["method"].tolist() == ["pc5"]


def test_missing_value_tokens_are_still_missing_in_optional_columns(tmp_path):
    path = write(tmp_path / "v.csv",
                 "s,r1,r1-1,1,c,A,B,1,pc5,,a,NA,null,N/A,NA,None",
                 "s,r1,r1-1,2,c,A,B,2,pc5,,b,1,NULL,,n/a,")
    votes = frames.read_votes(path)
    for col in ("repeat_of", "gold_expected", "answered_at", "watch_ms", "stalls"):
        assert votes[col].isna().sum() == (1 if col == "repeat_of" else 2), col
    assert votes.loc[1, "repeat_of"] == 1


def test_empty_required_ids_are_still_listed(tmp_path):
    path = write(tmp_path / "v.csv",
                 "s,,r1-1,1,c,A,B,1,pc5,,a,,,,10000,0",
                 "s,r1,r1-1,2,,A,B,1,pc5,,a,,,,10000,0",
                 "s,r1,r1-1,3,c,,B,1,pc5,,a,,,,10000,0",
                 "s,r1,r1-1,4,c,A,  ,1,pc5,,a,,,,10000,0")
    with pytest.raises(frames.FrameError) as info:
        frames.read_votes(path)
    problems = info.value.problems
    for col, row in (("rater", 0), ("content", 1), ("cond_a", 2), ("cond_b", 3)):
        assert f"column '{col}' is empty in 1 row(s) (rows {row})" in problems
    # A frame built in code: None and blank strings are empty, "None" is a name.
    df = frames.read_votes(CASES / "condition_named_None.csv")
    frames.validate(df)
    with pytest.raises(frames.FrameError, match="column 'cond_a' is empty in 2 row"):
        frames.validate(df.assign(cond_a=[None, "", "x", "y", "z", "w"]))


def test_nfc_and_nfd_spellings_are_one_condition(tmp_path):
    assert NFC != NFD and len(NFC) == 4 and len(NFD) == 5
    case = CASES / "nfc_nfd_names.csv"
    # Two of the case's rows compare café with café (typed two ways): one condition with itself.
    with pytest.raises(frames.FrameError) as info:
        frames.read_votes(case)
    assert info.value.problems == [
        "cond_a and cond_b are one condition ('café') written in two Unicode forms (ids are compared in NFC) "
        "in 2 row(s) (rows 0, 3)"]
    # The rest compare café (NFC in some rows, NFD in others) with X: two conditions, not three.
    raw = frames.read_table(case)
    assert {NFC, NFD} <= set(raw["cond_a"]) | set(raw["cond_b"])
    votes = frames.validate(raw.drop(index=[0, 3]))
    assert frames.conditions(votes) == ["X", NFC]
    fit = bt.fit(votes, ci="hessian")
    assert list(fit.conditions) == ["X", NFC]
    assert fit.to_frame().set_index("condition").loc[NFC, "n_votes"] == 4
    # Every id column, ratings frames too.
    ratings = pd.DataFrame({"study": "s", "rater": [NFD, NFC], "session": ["1", "2"], "trial": [1, 1],
                            "content": [NFC, NFD], "cond": [NFD, NFC], "score": [3, 4], "method": "acr5",
                            **dict.fromkeys(frames.RATINGS_COLUMNS[-5:])})
    for col in ("rater", "content", "cond"):
        assert frames.validate(ratings)[col].tolist() == [NFC, NFC]


def test_pair_tables_s_obj_and_stimuli_use_the_same_ids(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f"cond_a,cond_b,wins_a,ties,wins_b\nNA,None,3,1,2\n{NFD},NA,2,0,2\n{NFC},None,1,1,1\n",
                    encoding="utf-8")
    table, _ = report.read_input(path)
    pt = aggregate.from_pair_table(table)
    assert pt.conditions == sorted(["NA", "None", NFC])
    with pytest.raises(ValueError, match="'cond_b' is empty"):
        aggregate.from_pair_table(pd.DataFrame({"cond_a": ["A"], "cond_b": [None], "wins_a": [1], "ties": [0],
                                                "wins_b": [1]}))
    s_obj = tmp_path / "s_obj.csv"
    s_obj.write_text(f"condition,s_obj\nNA,1.5\n{NFD},2.0\n", encoding="utf-8")
    assert read_s_obj_csv(s_obj) == {"NA": 1.5, NFC: 2.0}
    s_obj.write_text("condition,s_obj\nNA,NA\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not a number for condition\(s\) \['NA'\]"):
        read_s_obj_csv(s_obj)
    stim = stimuli_frame({(NFD, "None"): "a.mp4"})
    assert stim.loc[0, ["content", "condition"]].tolist() == [NFC, "None"]


# --------------------------------------------------------------------------- Votes: the validated frame type


def _votes() -> frames.Votes:
    raw = pd.DataFrame({"rater": ["r1", "r1", "r2", "r2"], "session": ["s1", "s1", "s2", "s2"], "trial": [1, 2, 1, 2],
                        "content": "c", "cond_a": ["A", "B", "A", "B"], "cond_b": ["B", "C", "C", "A"],
                        "pref": [1, 2, -1, 2], "method": "pc5", "repeat_of": [None, None, None, 1]})
    for col in frames.PAIRWISE_COLUMNS:
        if col not in raw:
            raw[col] = None
    return frames.validate(raw)


def test_validate_returns_votes_and_takes_them_back_as_they_are():
    votes = _votes()
    assert isinstance(votes, frames.Votes) and isinstance(votes, pd.DataFrame) and votes.kind == "pairwise"
    assert frames.validate(votes) is votes and frames.validate(votes, "pairwise") is votes
    assert frames.detect_kind(votes) == "pairwise"
    with pytest.raises(frames.FrameError):  # the other layout is checked, and fails as a plain frame would
        frames.validate(votes, "ratings")
    with pytest.raises(TypeError):
        frames.Votes(pd.DataFrame(votes))  # only validate() makes them


@pytest.mark.parametrize("derive", [
    lambda v: v.copy(), lambda v: v[v["pref"] > 0], lambda v: v[["rater", "pref"]], lambda v: v.assign(x=1),
    lambda v: v.head(2), lambda v: pd.concat([v, v]), lambda v: v.reset_index(), lambda v: v.astype({"pref": float}),
    lambda v: v.query("pref > 0"), lambda v: v.iloc[:2], lambda v: v.loc[v.index[:2]], lambda v: v.sort_values("pref"),
    lambda v: v.drop(columns="reason"), lambda v: v.rename(columns={"pref": "p"}), lambda v: v.fillna({"reason": "x"}),
    lambda v: v.merge(v[["session", "trial"]], on=["session", "trial"]), lambda v: pd.DataFrame(v),
])
def test_a_frame_derived_from_votes_is_a_plain_frame_and_validated_again(derive, monkeypatch):
    derived = derive(_votes())
    assert type(derived) is pd.DataFrame
    calls = []
    real = frames.validate
    monkeypatch.setattr(frames, "validate", lambda df, kind=None: calls.append(type(df)) or real(df, kind))
    if {"cond_a", "cond_b", "pref"} <= set(derived.columns):
        with contextlib.suppress(frames.FrameError):  # e.g. the concatenation repeats every trial
            bt.count_votes(derived, main_only=False)
        assert calls == [pd.DataFrame]


@pytest.mark.parametrize("change", [
    lambda v: v.__setitem__("pref", 0), lambda v: v.__setitem__("new", 1), lambda v: v.__delitem__("reason"),
    lambda v: v.pop("reason"), lambda v: v.insert(0, "x", 1), lambda v: v.loc.__setitem__((0, "pref"), 2),
    lambda v: v.iloc.__setitem__((0, 7), 2), lambda v: v.at.__setitem__((0, "pref"), 2),
    lambda v: v.iat.__setitem__((0, 7), 2), lambda v: setattr(v, "index", [9, 8, 7, 6]),
    lambda v: setattr(v, "columns", list(v.columns)), lambda v: v.fillna({"reason": "x"}, inplace=True),
    lambda v: v.replace(1, 2, inplace=True), lambda v: v.where(v.notna(), inplace=True),
    lambda v: v.clip(lower=5, inplace=True), lambda v: v.ffill(inplace=True), lambda v: v.interpolate(inplace=True),
    lambda v: v.drop(index=[0], inplace=True), lambda v: v.rename(columns={"pref": "p"}, inplace=True),
    lambda v: v.reset_index(drop=True, inplace=True), lambda v: v.set_index("rater", inplace=True),
    lambda v: v.sort_values("pref", inplace=True), lambda v: v.dropna(inplace=True),
    lambda v: v.query("pref > 0", inplace=True), lambda v: v.update(pd.DataFrame({"pref": [2]})),
    lambda v: v.isetitem(7, 0),
])
def test_votes_cannot_be_changed_in_place(change):
    votes = _votes()
    before = pd.DataFrame(votes).copy()
    with pytest.raises((TypeError, ValueError)):
        change(votes)
    pd.testing.assert_frame_equal(pd.DataFrame(votes), before)


def test_rows_of_votes_are_votes_and_public_functions_do_not_validate_votes(monkeypatch):
    from analysis import screening

    votes = _votes()
    main = votes.rows(votes["repeat_of"].isna())
    assert isinstance(main, frames.Votes) and main.kind == "pairwise" and list(main.index) == [0, 1, 2]
    with pytest.raises(ValueError):
        votes.rows([True])
    calls = []
    real = frames._problems  # the checks themselves: never run for a Votes
    monkeypatch.setattr(frames, "_problems", lambda *a: calls.append(1) or real(*a))
    assert isinstance(screening.main_votes(votes), frames.Votes)
    screening.screen(votes, screening.ScreeningRules.none())
    bt.fit(votes, ties="split", ci="hessian")
    bt.fit_by_reason(votes.assign(reason="x"), ties="split", ci="hessian")  # a derived frame: checked once
    assert calls == [1]


def test_votes_survive_pickling():
    import pickle

    votes = _votes()
    back = pickle.loads(pickle.dumps(votes))
    assert type(back) is frames.Votes and back.kind == "pairwise"
    pd.testing.assert_frame_equal(pd.DataFrame(back), pd.DataFrame(votes))



def test_an_old_column_name_is_named_in_the_error_of_validate() -> None:
    """A frame built by hand with the old ``scale`` column is refused naming the new name and the fix."""
    old = pd.DataFrame(_votes()).rename(columns={"method": "scale"})
    with pytest.raises(frames.FrameError, match=r"missing column\(s\): method; found the old name 'scale'"):
        frames.validate(old)
