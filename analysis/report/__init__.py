"""One call from a vote frame to a ranking, and a self-contained report directory.

:func:`analyze` runs the whole chain of PROTOCOL.md §3 on one input and keeps every
intermediate result and parameter; :func:`write_report` writes

``scores.csv``
    ``condition, score, se, ci_low, ci_high, ci_method, n_votes`` (ratings: + ``n_raters,
    sd``): Bradley–Terry scores or MOS (DMOS), one interval per condition, named by its
    method in ``ci_method``.
``ranking.csv``
    ``rank, condition, score, ci_low, ci_high, group, separated_by`` (+ ``rank_low,
    rank_high``), see :func:`analysis.ranking.rank`: the same intervals as ``scores.csv``,
    and the significance tests use the covariance of the same method
    (``params["rank_by"]``).
``raters.csv``
    One row per rater: the screening statistics, ``kept`` and ``dropped_by``.
``report.html``
    Plots (plotly.js embedded once, no network needed), the tables, every parameter,
    the package version, input row counts, who was dropped and why, the tie groups and
    the adjacent pairs the votes could not separate.

Intervals
---------
One rater's votes are not independent (raters differ in bias, decisiveness and taste), so
every interval, test and rank interval is **rater-clustered** by default (``ci="cluster"``:
the cluster-robust sandwich covariance, see :mod:`analysis.bradley_terry` and
:mod:`analysis.mos` for the formulas and sources). ``ci="bootstrap"`` resamples raters
instead (``bootstrap`` rounds); ``ci="model"`` gives the model-based intervals that treat
votes as independent (Hessian for Bradley–Terry, Student-t for MOS) — narrower than the
truth whenever raters differ. Whatever the method, every output carries one interval per
condition and names it.

The three inputs
----------------
* **pairwise votes** (``cond_a, cond_b, pref``): screen raters → fit Bradley–Terry on
  the kept raters' main votes → one fit per decision factor (``reason``) → rank with the
  covariance of the interval method.
* **ratings** (``cond, score``): screen → MOS per condition (and per content) → DMOS
  when the method is ``acr-hr`` and the hidden reference is known → optional subject
  model → rank conditions by MOS (DMOS), testing differences with the covariance of the
  condition means (raters who scored several conditions correlate them).
* **pair table** (``cond_a, cond_b`` and counts or a mean vote, no ``pref``; see
  :func:`analysis.aggregate.from_pair_table`): no raters, so no screening and no
  rater-clustered interval — Hessian intervals only, and a note says so.

Modules
-------
``fit`` (:class:`AnalysisOptions`, :func:`analyze`), ``result`` (:class:`AnalysisResult`,
:class:`ObjectiveSummary`, the ranking table and the terminal summary), ``tiebreaker``
(the objective scorer next to the votes), ``files`` (reading the input, writing the
report directory) and ``page`` (the HTML page from the Jinja2 template
``analysis/templates/report.html``). Import the names from ``analysis.report``.
"""

from analysis.report.files import is_pair_table, read_input, write_report
from analysis.report.fit import MIN_BOOTSTRAP_RATERS, AnalysisOptions, analyze
from analysis.report.page import render_html
from analysis.report.result import (
    CI_CHOICES,
    METHOD_LABELS,
    RANKING_COLUMNS,
    REPORT_FILES,
    SCORE_COLUMNS,
    AnalysisResult,
    ObjectiveSummary,
    ranking_frame,
    summary,
)
from analysis.report.tiebreaker import objective_summary

__all__ = [
    "CI_CHOICES", "METHOD_LABELS", "MIN_BOOTSTRAP_RATERS", "RANKING_COLUMNS", "REPORT_FILES", "SCORE_COLUMNS",
    "AnalysisOptions", "AnalysisResult", "ObjectiveSummary", "analyze", "is_pair_table", "objective_summary",
    "ranking_frame", "read_input", "render_html", "summary", "write_report",
]
