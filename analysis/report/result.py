"""What :func:`analysis.report.analyze` returns: the result, its tie-breaker summary and its tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import bradley_terry as bt
from analysis import normalize, ranking, screening

#: Files :func:`write_report` writes.
REPORT_FILES = ("scores.csv", "ranking.csv", "raters.csv", "report.html")
#: Leading columns of ``ranking.csv`` and ``scores.csv``.
RANKING_COLUMNS = ("rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by")
SCORE_COLUMNS = ("condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes")
#: Interval choices of :func:`analyze`: ``model`` is Hessian (Bradley–Terry) or Student-t (MOS).
CI_CHOICES = ("cluster", "bootstrap", "model")
#: How each interval method (``ci_method``, ``params["rank_by"]``) reads in a sentence.
METHOD_LABELS = {"cluster": "rater-clustered", "bootstrap": "rater-bootstrap",
                 "hessian": "model-based (Hessian; votes treated as independent)",
                 "t": "Student-t (scores treated as independent)"}


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything :func:`analyze` computed, and how.

    Attributes
    ----------
    kind : {"pairwise", "ratings"}
    source : {"votes", "pair-table"}
        Per-vote rows or an aggregated pair table.
    scores : DataFrame
        ``condition, score, se, ci_low, ci_high, ci_method, n_votes`` (ratings: + ``n_raters, sd``).
    ranking : Ranking
        Final order, tie groups, pairwise tests and adjacent pairs.
    raters : DataFrame
        One row per rater (screening statistics, ``kept``, ``dropped_by``); empty for a
        pair table.
    by_reason : dict of str to DataFrame
        Per-factor score frames (pairwise votes only), intervals of ``params["rank_by"]``.
    counts : dict
        Input row counts (rows, repeats, gold, raters kept, votes fitted, ...).
    params : dict
        Every parameter used, including the fit's settings and the package version.
    notes : list of str
        Things the reader must know (factors not fitted, failed bootstrap rounds, ...).
    fit : BTResult, optional
        The overall Bradley–Terry fit.
    reason_fits : dict of str to BTResult
    screening : ScreeningResult, optional
    pair_counts : PairCounts, optional
        Counts behind the win-rate matrix (pairwise only).
    mos : DataFrame, optional
        MOS per condition (ratings; includes the reference when there is one).
    mos_content : DataFrame, optional
        MOS per (content, condition) (ratings).
    subject : SubjectModelResult, optional
        The subject model, when asked for.
    published : DataFrame, optional
        Published scores to draw next to ours (``condition, score``).
    objective : ObjectiveSummary, optional
        With a tie-breaker: the objective score of every condition next to its score,
        and the scorer's agreement with the votes (see :func:`objective_summary`).
    """

    kind: str
    source: str
    scores: pd.DataFrame
    ranking: ranking.Ranking
    raters: pd.DataFrame
    by_reason: dict[str, pd.DataFrame] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fit: bt.BTResult | None = None
    reason_fits: dict[str, bt.BTResult] = field(default_factory=dict)
    screening: screening.ScreeningResult | None = None
    pair_counts: bt.PairCounts | None = None
    mos: pd.DataFrame | None = None
    mos_content: pd.DataFrame | None = None
    subject: normalize.SubjectModelResult | None = None
    published: pd.DataFrame | None = None
    objective: ObjectiveSummary | None = None

    @property
    def groups(self) -> list[list[str]]:
        """Statistically tied groups of conditions, best first."""
        return self.ranking.groups

    @property
    def unresolved(self) -> pd.DataFrame:
        """Adjacent pairs of the final order that neither the votes nor a tie-breaker separated."""
        adj = self.ranking.adjacent
        return adj[adj["separated_by"] == "unresolved"].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class ObjectiveSummary:
    """What a reader needs to judge a tie-breaker (see :func:`objective_summary`).

    Attributes
    ----------
    label : str
        ``tiebreak:<name>@<version>``, as in ``separated_by``.
    status : str
        How far the scorer can be trusted: uncalibrated prior, cross-fitted head, S_obj, ...
    basis : str
        What ``objective`` means for this tie-breaker.
    table : DataFrame
        ``rank, condition, group, score, objective, tiebreak_value, separated_by`` in
        final order: ``objective`` against every other condition, ``tiebreak_value``
        against the other members of the condition's tie group (the value that ordered
        the group; empty for a condition alone in its group).
    agreement : dict
        ``n_conditions, srocc, krcc, plcc`` (objective vs score; ``plcc_poly3`` and
        ``main_score`` from :func:`analysis.agreement.agreement` with ≥ 5 conditions),
        ``pairwise_accuracy, n_votes`` over decided votes, ``tied_accuracy, n_tied_votes``
        over decided votes between members of one tie group.
    separated : list of str
        Adjacent pairs of the final order that the scorer (not the votes) separated.
    notes : list of str
    """

    label: str
    status: str
    basis: str
    table: pd.DataFrame
    agreement: dict[str, Any]
    separated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        """One line for a terminal.

        Returns
        -------
        str
            Label and status, separated pairs, SROCC, PLCC and (with decided votes) the
            pairwise accuracy.
        """
        a = self.agreement
        parts = [f"tie-breaker {self.label} [{self.status}]",
                 f"separated {len(self.separated)} adjacent pair(s)",
                 f"SROCC {_fmt_num(a.get('srocc'))}", f"PLCC {_fmt_num(a.get('plcc'))}"]
        if a.get("n_votes"):
            parts.append(f"pairwise accuracy {_fmt_num(a.get('pairwise_accuracy'))} on {a['n_votes']} decided votes")
        return "; ".join(parts)


def _fmt_num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(f) else f"{f:.3f}"



def ranking_frame(result: AnalysisResult) -> pd.DataFrame:
    """``ranking.csv``: the documented columns first (with a tie-breaker, then ``objective`` and
    ``tiebreak_value``, see :class:`ObjectiveSummary`).

    Parameters
    ----------
    result : AnalysisResult

    Returns
    -------
    DataFrame
        One row per condition in final order: :data:`RANKING_COLUMNS`, then any others.
    """
    table = result.ranking.to_frame()
    if result.objective is not None:
        extra = result.objective.table.loc[:, ["condition", "objective", "tiebreak_value"]]
        table = table.merge(extra, on="condition", how="left")
    table["ci_method"] = result.params.get("rank_by", "")
    rest = [c for c in table.columns if c not in RANKING_COLUMNS]
    return table[list(RANKING_COLUMNS) + rest]


def summary(result: AnalysisResult, conditions: Sequence[str] | None = None) -> str:
    """A few plain-text lines for a terminal: the ranking with groups and how each step was decided.

    Parameters
    ----------
    result : AnalysisResult
    conditions : sequence of str, optional
        Only these conditions' lines (default: all).

    Returns
    -------
    str
        A line naming the interval method, then one line per condition: rank, name, score,
        interval, group and ``separated_by``.
    """
    table = ranking_frame(result)
    if conditions is not None:
        table = table[table["condition"].isin(list(conditions))]
    method = result.params.get("rank_by", "")
    lines = [f"{1 - result.params.get('alpha', 0.05):.0%} intervals: {METHOD_LABELS.get(method, method)}"]
    lines += [f"{r.rank:>3}  {r.condition:<20} {r.score:+.3f}  [{r.ci_low:+.3f}, {r.ci_high:+.3f}]  "
              f"group {r.group}  {r.separated_by}" for r in table.itertuples()]
    return "\n".join(lines)
