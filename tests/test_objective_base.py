"""The scorer hook: PairScore validation, p_sym symmetry, discovery by name."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.objective import HandcraftedScorer, base
from analysis.objective.base import (
    N_AUX,
    PairScore,
    ScorerError,
    UnknownScorerError,
    available_scorers,
    combine_orders,
    get_scorer,
    p_sym,
    p_sym_value,
    scorer_from_config,
    symmetric_compare,
)

AUX = tuple([0.5] * N_AUX)


@dataclass
class TableScorer:
    """A deliberately order-dependent fake: p(A, B) comes from a table, not from 1 - p(B, A)."""

    table: dict[tuple[str, str], float]
    aux_by_slot: dict[tuple[str, int], tuple[float, ...]]
    name: str = "table"
    version: str = "1"

    def features(self, path: str) -> dict[str, float]:
        return {}

    def aux(self, path: str) -> tuple[float, ...]:
        return self.aux_by_slot[(path, 0)]

    def compare(self, path_a: str, path_b: str) -> PairScore:
        return PairScore(self.table[(path_a, path_b)], self.aux_by_slot[(path_a, 0)], self.aux_by_slot[(path_b, 1)])


def test_pair_score_validates_everything() -> None:
    PairScore(0.3, AUX, AUX)
    with pytest.raises(ScorerError, match="probability"):
        PairScore(1.2, AUX, AUX)
    with pytest.raises(ScorerError, match="probability"):
        PairScore(float("nan"), AUX, AUX)
    with pytest.raises(ScorerError, match="expected 11 values"):
        PairScore(0.5, AUX[:10], AUX)
    with pytest.raises(ScorerError, match="k = \\[4\\]"):
        PairScore(0.5, AUX, (*AUX[:3], 1.5, *AUX[4:]))
    with pytest.raises(ScorerError):
        PairScore.from_dict({"p": 0.5, "aux_a": 3, "aux_b": AUX})
    with pytest.raises(ScorerError, match="missing"):
        PairScore.from_dict({"p": 0.5})


def test_pair_score_round_trip_and_swap() -> None:
    aux_a = tuple(i / 20 for i in range(N_AUX))
    s = PairScore(0.8, aux_a, AUX)
    assert PairScore.from_dict(s.to_dict()) == s
    assert s.swapped().p == pytest.approx(0.2)
    assert (s.swapped().aux_a, s.swapped().aux_b) == (AUX, aux_a)


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
aux_vec = st.tuples(*[unit] * N_AUX)


@given(p_ab=unit, p_ba=unit, a0=aux_vec, a1=aux_vec, b0=aux_vec, b1=aux_vec)
def test_p_sym_is_order_independent(p_ab, p_ba, a0, a1, b0, b1) -> None:
    """p_sym(A, B) = 1 - p_sym(B, A) for any scorer, however asymmetric."""
    scorer = TableScorer(
        {("A", "B"): p_ab, ("B", "A"): p_ba},
        {("A", 0): a0, ("A", 1): a1, ("B", 0): b0, ("B", 1): b1},
    )
    ab = symmetric_compare(scorer, "A", "B")
    ba = symmetric_compare(scorer, "B", "A")
    assert math.isclose(ab.p + ba.p, 1.0, abs_tol=1e-12)
    assert math.isclose(p_sym(scorer, "A", "B"), (p_ab + 1 - p_ba) / 2, abs_tol=1e-12)
    # Each stimulus's aux is the mean of its two slots, whichever order was asked.
    for x, y in zip(ab.aux_a, ba.aux_b, strict=True):
        assert math.isclose(x, y, abs_tol=1e-12)


def test_p_sym_value_and_combine() -> None:
    assert p_sym_value(0.9, 0.3) == pytest.approx(0.8)
    combined = combine_orders(PairScore(0.9, AUX, AUX), PairScore(0.3, AUX, AUX))
    assert combined.p == pytest.approx(0.8)


def test_builtins_are_discoverable_without_reinstall() -> None:
    names = available_scorers()
    assert {"handcrafted", "siamese-checkpoint", "command"} <= set(names)
    scorer = get_scorer("handcrafted", frames=8)
    assert isinstance(scorer, HandcraftedScorer)
    assert scorer.frames == 8 and not scorer.calibrated
    assert isinstance(scorer, base.Scorer)
    cmd = scorer_from_config({"name": "command", "options": {"command": ["true"]}})
    assert cmd.name == "command"
    with pytest.raises(UnknownScorerError, match="handcrafted"):
        get_scorer("no-such-scorer")


def test_entry_points_win_over_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin registered in the entry-point group is found and instantiated by name."""
    from importlib import metadata

    ep = metadata.EntryPoint(name="table", value="tests_objective_plugin:Factory", group=base.ENTRY_POINT_GROUP)

    def fake_entry_points(group: str | None = None, **_: object):
        return [ep] if group == base.ENTRY_POINT_GROUP else []

    import sys
    import types

    module = types.ModuleType("tests_objective_plugin")

    def factory(**options: object) -> TableScorer:
        return TableScorer({("a", "b"): 0.7}, {("a", 0): AUX, ("b", 1): AUX}, **options)  # type: ignore[arg-type]

    module.Factory = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_objective_plugin", module)
    monkeypatch.setattr(base.metadata, "entry_points", fake_entry_points)
    assert available_scorers()["table"] == "tests_objective_plugin:Factory"
    plugin = get_scorer("table", version="9")
    assert plugin.compare("a", "b").p == pytest.approx(0.7)
    assert plugin.version == "9"
