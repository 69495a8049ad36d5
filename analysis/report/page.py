"""The report page: figures and tables rendered through the Jinja2 template ``analysis/templates/report.html``.

Jinja2 is used directly (autoescaped; no Flask on the analysis side). The pandas tables and
the plotly figures are HTML already and enter the template as ``Markup``; every other value
is escaped there.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pandas as pd

import analysis
from analysis.report.result import METHOD_LABELS, AnalysisResult, ranking_frame

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

#: Name of the page template in ``analysis/templates``.
TEMPLATE = "report.html"

_AGREEMENT_LABELS = {
    "n_conditions": "conditions compared",
    "srocc": "SROCC (objective vs score)",
    "krcc": "KRCC (objective vs score)",
    "plcc": "PLCC (objective vs score, linear)",
    "plcc_poly3": "PLCC after a cubic mapping",
    "main_score": "(|SROCC| + |PLCC|) / 2",
    "pairwise_accuracy": "pairwise accuracy: share of decided votes on the scorer's side",
    "n_votes": "decided votes with a score",
    "tied_accuracy": "pairwise accuracy on votes inside tie groups",
    "n_tied_votes": "decided votes inside tie groups",
    "pairwise_basis": "pairwise accuracy judged on",
}
#: Columns of the dropped-raters table, in order, where the frame has them (and any value).
_DROPPED_COLUMNS = ("rater", "dropped_by", "n_votes", "consistency", "gold_accuracy", "bt_agreement", "bt_p",
                    "loo_corr", "loo_p", "left_share", "position_p", "median_watch_ms", "median_answer_ms",
                    "kurtosis")


@functools.cache
def _environment() -> jinja2.Environment:
    """The template environment, made on first use (importing jinja2 is not free)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("analysis", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    return env


def _table(df: pd.DataFrame, max_rows: int | None = None) -> Markup:
    """A frame as an HTML table (at most ``max_rows`` rows, then a line saying how many more)."""
    from markupsafe import Markup, escape

    shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
    body = shown.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}", escape=True)
    more = len(df) - len(shown)
    tail = Markup('<p class="muted">… {} more rows in the CSV.</p>').format(escape(more)) if more else ""
    return Markup(body) + tail


def _fmt(v: Any) -> str:
    """A parameter value as the page shows it (floats to 6 digits, lists joined, None as a dash)."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "—"
    if v is None:
        return "—"
    return str(v)


def _flat(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _figures(result: AnalysisResult) -> list[tuple[str, str, Any]]:
    """(anchor, caption, figure) in page order."""
    from analysis import plots  # plotly: only when a page is rendered

    order = list(result.ranking.table["condition"])
    score_label = ("Bradley–Terry score (centred log-strength)" if result.kind == "pairwise"
                   else f"{result.params.get('measure', 'mos').upper()} (scale points)")
    method = METHOD_LABELS.get(result.params.get("rank_by", ""), result.params.get("rank_by", ""))
    main_frame = result.ranking.table[["condition", "score", "ci_low", "ci_high"]]
    if "n_votes" in result.scores.columns:
        main_frame = main_frame.merge(result.scores[["condition", "n_votes"]], on="condition", how="left")
    caption = f"Scores with 95% intervals ({method})" + (
        "; bottom panel: one fit per decision factor (same votes, only those naming the factor)."
        if result.by_reason else ".")
    figs = [("intervals", caption,
             plots.interval_plot(main_frame, result.by_reason or None, result.published,
                                 title="Scores with 95% confidence intervals", score_label=score_label))]
    if result.pair_counts is not None:
        figs.append(("winrate", "Share of votes preferring the row condition (ties count half), best first.",
                     plots.winrate_heatmap(result.pair_counts, order=order)))
    if result.mos_content is not None:
        figs.append(("mos-content", f"MOS per content (95% intervals, {method}).",
                     plots.mos_per_content(result.mos_content)))
    if len(result.raters):
        figs.append(("rater-qc", "Each rater's screening statistics; dropped raters are crosses (hover: rule).",
                     plots.rater_qc(result.raters)))
    return figs


def _figure_context(result: AnalysisResult) -> list[dict[str, Any]]:
    """Anchor, HTML (plotly.js embedded with the first figure only) and caption of every figure."""
    from markupsafe import Markup

    from analysis import plots

    return [{"anchor": anchor, "caption": caption,
             "html": Markup(plots.to_html(fig, include_plotlyjs=k == 0, full_html=False))}
            for k, (anchor, caption, fig) in enumerate(_figures(result))]


def _ranking_context(result: AnalysisResult) -> dict[str, Any]:
    rk = result.ranking
    unresolved = result.unresolved
    return {
        "ranking_table": _table(ranking_frame(result)), "groups": rk.groups,
        "tied": any(len(g) > 1 for g in rk.groups), "alpha": result.params.get("alpha"),
        "rank_method": rk.params.get("method"),
        "unresolved": list(zip(unresolved["pair"], unresolved["p_adjusted"], strict=True)),
        "tiebreak": rk.params.get("tiebreak"), "adjacent_table": _table(rk.adjacent),
    }


def _objective_context(result: AnalysisResult) -> dict[str, Any]:
    obj = result.objective
    if obj is None:
        return {"objective": None}
    return {"objective": obj, "objective_table": _table(obj.table),
            "agreement": {_AGREEMENT_LABELS.get(k, k): v for k, v in obj.agreement.items()}}


def _screening_context(result: AnalysisResult) -> dict[str, Any]:
    sr = result.screening
    if sr is None:
        return {"screening": None}
    raters = result.raters
    dropped = raters[~raters["kept"].astype(bool)]
    counts: dict[str, int] = {}
    for names in dropped["dropped_by"].astype(str):
        for rule in filter(None, names.split(";")):
            counts[rule] = counts.get(rule, 0) + 1
    cols = [c for c in _DROPPED_COLUMNS if c in dropped.columns and dropped[c].notna().any()]
    return {"screening": sr, "n_raters": len(raters), "n_dropped": len(dropped), "drop_counts": counts,
            "dropped_table": _table(dropped[cols]) if counts else "", "rules": asdict(sr.rules)}


def _ratings_context(result: AnalysisResult) -> dict[str, Any]:
    dmos = result.mos is not None and result.params.get("measure") == "dmos"
    subject = result.subject
    return {"reference_mos_table": _table(result.mos) if dmos else "", "subject": subject,
            "subject_table": _table(subject.raters, max_rows=200) if subject is not None else ""}


def render_html(result: AnalysisResult) -> str:
    """The report page as one HTML string (plotly.js embedded once, inline).

    Parameters
    ----------
    result : AnalysisResult

    Returns
    -------
    str
        A self-contained HTML document (stamped with the current UTC time).
    """
    context = {
        "result": result,
        "title": f"panelrank analysis — {result.kind} ({result.source})",
        "version": result.params.get("version", analysis.__version__),
        "stamp": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "figures": _figure_context(result),
        "scores_table": _table(result.scores),
        "params": {k: v for k, v in _flat(result.params).items() if not k.startswith("screening.")},
        **_ranking_context(result), **_objective_context(result), **_screening_context(result),
        **_ratings_context(result),
    }
    return _environment().get_template(TEMPLATE).render(context)
