"""The vote-frame schema: ids are text (``NA``/``None`` are names), in Unicode NFC."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import aggregate, frames, report
from analysis import bradley_terry as bt
from analysis.objective.model import read_s_obj_csv
from analysis.objective.tiebreak import stimuli_frame
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
                            "content": [NFC, NFD], "cond": [NFD, NFC], "score": [3, 4], "scale": "acr5",
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
