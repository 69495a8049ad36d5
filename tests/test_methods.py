"""The test-method registry: every entry is consistent with itself, and the database, the API
document and the rater's page take their method knowledge from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.methods import METHODS, PAIRWISE_METHODS, RATING_METHODS
from study_app import openapi
from study_app.models import Study

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(METHODS))
def test_every_screen_answer_is_stored_on_the_scale(name: str) -> None:
    method = METHODS[name]
    answers = range(method.screen_low, method.screen_high + 1)
    for a_left in (True, False):
        stored = np.array([method.to_stored(a, a_left) for a in answers], dtype=float)
        assert method.contains(stored).all()
        assert all(method.stored_ok(int(v)) for v in stored)
    if method.control == "buttons":
        assert [v for v, _ in method.labels] == list(answers)  # one labelled button per answer
    if method.pairwise:
        assert sorted(method.toward_right) == sorted(set(method.toward_right))  # the mapping is one to one
        assert (method.neutral is None) == (not method.allows_zero)
        assert method.neutral is None or method.to_stored(method.neutral, True) == 0


def test_kinds_split_the_registry() -> None:
    assert set(PAIRWISE_METHODS) | set(RATING_METHODS) == set(METHODS)
    assert not set(PAIRWISE_METHODS) & set(RATING_METHODS)
    assert all(METHODS[m].value_column == "pref" for m in PAIRWISE_METHODS)
    assert all(METHODS[m].value_column == "score" for m in RATING_METHODS)


def test_database_and_api_document_list_the_registry() -> None:
    check = next(c for c in Study.__table__.constraints if c.name == "ck_study_method")
    assert re.findall(r"'([^']+)'", str(check.sqltext)) == list(METHODS)
    assert openapi.STUDY["properties"]["method"]["enum"] == list(METHODS)


def test_the_page_gets_the_entry_as_json_and_vote_js_names_no_method() -> None:
    for method in METHODS.values():
        entry = json.loads(json.dumps(method.to_json()))
        assert entry["name"] == method.name and entry["neutral"] == method.neutral
    vote_js = (ROOT / "static" / "js" / "vote.js").read_text()
    assert not [m for m in METHODS if re.search(rf"[\"'`]{re.escape(m)}[\"'`.]", vote_js)]
