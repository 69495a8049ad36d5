"""The objective scorer next to the votes: what a reader needs to judge a tie-breaker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from analysis import ranking
from analysis.report.result import AnalysisResult, ObjectiveSummary

_TIEBREAK_ERRORS = (ValueError, LookupError, RuntimeError, OSError)


def _tiebreak_status(tiebreak: Any) -> tuple[str, str, list[str]]:
    scorer = getattr(tiebreak, "scorer", None)
    pair_basis = ("mean p_sym(condition, other) over shared contents, averaged over every other condition; "
                  "the tie-break value uses the other members of the tie group only")
    if getattr(tiebreak, "s_obj", None) is not None:
        return "S_obj (challenge score per condition)", "S_obj of the condition (PROTOCOL.md §4)", []
    if scorer is not None and hasattr(scorer, "crossfit"):
        return ("fitted head, cross-fitted (no pair is judged by a head trained on its own votes)", pair_basis, [])
    if scorer is not None and getattr(scorer, "calibrated", None) is False:
        return ("uncalibrated (prior weights, not fitted to votes)", pair_basis,
                ["the tie-breaker uses the scorer's prior weights, which were set by hand: judge it by its "
                 "agreement with the votes below (`panelrank fit-scorer` fits a head on this study's votes)"])
    if scorer is not None and getattr(scorer, "calibrated", None) is True:
        return ("fitted head (not cross-fitted)", pair_basis,
                ["a head fitted on these votes without cross-fitting may repeat the votes that failed to "
                 "separate a pair; prefer the model file written by `panelrank fit-scorer`"])
    if scorer is not None:
        return "scorer", pair_basis, []
    return "external tie-breaker", "the value the tie-breaker returns for the condition", []


def _condition_pair_table(votes: pd.DataFrame, objective: Mapping[str, float]) -> pd.DataFrame:
    """Pair scores from per-condition values: p = 1, 0.5 or 0 as the objective says."""
    cells = votes.loc[:, ["content", "cond_a", "cond_b"]].astype(str).drop_duplicates()
    a = cells["cond_a"].map(objective).astype(float)
    b = cells["cond_b"].map(objective).astype(float)
    keep = a.notna() & b.notna()
    out = cells[keep].copy()
    out["p"] = 0.5 + 0.5 * np.sign((a - b)[keep].to_numpy())
    return out


def objective_summary(result: AnalysisResult, tiebreak: ranking.TieBreaker,
                      votes: pd.DataFrame | None = None) -> ObjectiveSummary:
    """The tie-breaker's objective score of every condition and its agreement with the votes.

    Parameters
    ----------
    result : AnalysisResult
        A finished analysis ranked with ``tiebreak``.
    tiebreak : TieBreaker
        Called once with every condition (the objective score) and once per tie group
        (the value that ordered it); an objective tie-breaker caches what it scored.
    votes : DataFrame, optional
        The fitted (main, kept) pairwise votes, for the pairwise accuracy. A tie-breaker
        with ``pair_table()`` (see :mod:`analysis.objective.tiebreak`) is judged per
        content on p_sym; otherwise by the sign of the per-condition difference.

    Returns
    -------
    ObjectiveSummary
        A tie-breaker that fails (``ValueError``, ``LookupError``, ``RuntimeError``,
        ``OSError``) leaves NaN in the table and a line in ``notes`` instead of raising.
    """
    label = ranking.tiebreak_label(tiebreak)
    status, basis, notes = _tiebreak_status(tiebreak)
    table = result.ranking.table.loc[:, ["rank", "condition", "group", "score", "separated_by"]].copy()
    conds = [str(c) for c in table["condition"]]
    objective: dict[str, float] = {}
    try:
        values = tiebreak(conds)
        objective = {c: float(values[c]) for c in conds if c in values}
    except _TIEBREAK_ERRORS as exc:
        notes.append(f"objective score of every condition not computed: {exc}")
    in_group: dict[str, float] = {}
    for members in result.ranking.groups:
        if len(members) > 1:
            try:
                in_group.update({c: float(v) for c, v in tiebreak(list(members)).items()})
            except _TIEBREAK_ERRORS as exc:
                notes.append(f"tie-break values of group {members} not recomputed: {exc}")
    table["objective"] = [objective.get(c, np.nan) for c in conds]
    table["tiebreak_value"] = [in_group.get(c, np.nan) for c in conds]
    table = table.loc[:, ["rank", "condition", "group", "score", "objective", "tiebreak_value", "separated_by"]]

    agree = _rank_agreement(table["objective"].to_numpy(dtype=float), table["score"].to_numpy(dtype=float), notes)
    if votes is not None and {"content", "cond_a", "cond_b", "pref"} <= set(votes.columns):
        agree |= _vote_agreement(tiebreak, votes, objective, table)
    adj = result.ranking.adjacent
    separated = adj.loc[adj["separated_by"] == label, "pair"].astype(str).tolist()
    return ObjectiveSummary(label=label, status=status, basis=basis, table=table, agreement=agree,
                            separated=separated, notes=notes)


def _rank_agreement(x: np.ndarray, y: np.ndarray, notes: list[str]) -> dict[str, Any]:
    """``n_conditions, srocc, krcc, plcc`` (+ ``plcc_poly3, main_score`` with ≥ 5) of objective ``x``
    against score ``y`` over the conditions where both are finite; problems go to ``notes``."""
    from scipy import stats

    from analysis import agreement as agreement_mod

    ok = np.isfinite(x) & np.isfinite(y)
    agree: dict[str, Any] = {"n_conditions": int(ok.sum())}
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        agree.update(srocc=np.nan, krcc=np.nan, plcc=np.nan)
        notes.append("fewer than 3 conditions with distinct objective scores: no rank correlation")
        return agree
    agree["srocc"] = float(stats.spearmanr(x[ok], y[ok])[0])
    agree["krcc"] = float(stats.kendalltau(x[ok], y[ok])[0])
    agree["plcc"] = float(stats.pearsonr(x[ok], y[ok])[0])
    if ok.sum() >= 5:
        try:
            full = agreement_mod.agreement(x[ok], y[ok])
            agree["plcc_poly3"] = full.plcc_poly3
            agree["main_score"] = full.main_score
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            notes.append(f"mapped PLCC not computed: {exc}")
    return agree


def _vote_agreement(tiebreak: ranking.TieBreaker, votes: pd.DataFrame, objective: Mapping[str, float],
                    table: pd.DataFrame) -> dict[str, Any]:
    """Pairwise accuracy of the tie-breaker on the decided votes, overall and inside tie groups."""
    from analysis.objective.tiebreak import pairwise_agreement

    agree: dict[str, Any] = {}
    pt = tiebreak.pair_table() if hasattr(tiebreak, "pair_table") else None
    if pt is None or len(pt) == 0:
        pt = _condition_pair_table(votes, objective)
        agree["pairwise_basis"] = "sign of the per-condition objective difference"
    else:
        agree["pairwise_basis"] = "p_sym per content"
    v = votes.loc[:, ["content", "cond_a", "cond_b", "pref"]].astype({"content": str, "cond_a": str, "cond_b": str})
    whole = pairwise_agreement(pt, v)
    agree["pairwise_accuracy"], agree["n_votes"] = whole["accuracy"], whole["n"]
    group_of = dict(zip(table["condition"].astype(str), table["group"], strict=True))
    size = table["group"].value_counts()
    ga, gb = v["cond_a"].map(group_of), v["cond_b"].map(group_of)
    tied = (ga == gb) & ga.map(size).gt(1)
    within = pairwise_agreement(pt, v[tied.fillna(False).to_numpy(dtype=bool)])
    agree["tied_accuracy"], agree["n_tied_votes"] = within["accuracy"], within["n"]
    return agree


def with_objective(result: AnalysisResult, tiebreak: ranking.TieBreaker | None,
                    votes: pd.DataFrame | None) -> AnalysisResult:
    if tiebreak is None:
        return result
    return replace(result, objective=objective_summary(result, tiebreak, votes))
