"""Live leaderboard and exports: the same analysis and files as ``panelrank analyze``."""

from __future__ import annotations

import io
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Response, abort, render_template, request, send_file
from plotly.offline import get_plotlyjs

from analysis import plots, report, screening
from study_app import accounts, livestats
from study_app.db import get_db
from study_app.models import Study
from study_app.organizer.common import bp, me, own_study
from study_app.organizer.quality import selected_rules

TIE_MODELS = ("davidson", "rao-kupper", "split")
REPORT_FILES = report.REPORT_FILES
VOTE_FILES = ("votes.csv", "votes.parquet")


def _ties() -> str:
    ties = request.args.get("ties", "davidson")
    if ties not in TIE_MODELS:
        abort(400, description=f"unknown tie model '{ties}'; use one of {', '.join(TIE_MODELS)}")
    return ties


def _analysis(study: Study, ties: str, rules: list[str]) -> report.AnalysisResult | None:
    # Seeded with the study's seed: the same votes give the same intervals here, in the exports and
    # from the command line (see cli_command).
    return livestats.leaderboard(get_db(), study, livestats.rules_from(rules), ties=ties)


@bp.get("/studies/<slug>/leaderboard")
@accounts.login_required
def leaderboard(slug: str) -> str:
    study = own_study(slug)
    ties, rules = _ties(), selected_rules()
    try:
        result = _analysis(study, ties, rules)
        error = None
    except ValueError as exc:  # e.g. a comparison graph that is still disconnected early on
        result, error = None, str(exc)
    return render_template("organizer/leaderboard.html", me=me(), study=study, result=result, error=error,
                           rows=_ranking_rows(study, result), figure=_figure_json(result),
                           method_label=_method_label(result),
                           unresolved=_unresolved(result), ties=ties, tie_models=TIE_MODELS,
                           rules=rules, all_rules=list(livestats.RULE_FIELDS),
                           files=VOTE_FILES + REPORT_FILES, command=cli_command(study, ties, rules),
                           rejected=len(livestats.rejected_raters(get_db(), study)))


def cli_command(study: Study, ties: str, rules: list[str]) -> str | None:
    """The ``panelrank analyze-study`` call that writes the same analysis files, or None when the
    chosen screening rules have no command-line equivalent (the CLI knows the defaults or none)."""
    if set(rules) not in (set(livestats.DEFAULT_ON), set()):
        return None
    parts = ["panelrank analyze-study", study.slug, "--out report", f"--seed {study.seed}"]
    if study.pairwise:
        parts.append(f"--ties {ties}")
    if not rules:
        parts.append("--no-screening")
    if study.manifest.get("scorer"):
        parts.append("--no-tiebreak")  # the live leaderboard leaves ties to the votes
    return " ".join(parts)


def _ranking_rows(study: Study, result: report.AnalysisResult | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    labels = {c.key: c.label for c in study.conditions}
    table = report.ranking_frame(result)
    return [{**row, "label": labels.get(row["condition"])} for row in table.to_dict("records")]


def _method_label(result: report.AnalysisResult | None) -> str:
    method = "" if result is None else str(result.params.get("rank_by", ""))
    return report.METHOD_LABELS.get(method, method)


def _unresolved(result: report.AnalysisResult | None) -> list[str]:
    if result is None:
        return []
    adjacent = result.ranking.adjacent_pairs()
    return [str(p) for p in adjacent.loc[adjacent["separated_by"] == "unresolved", "pair"]]


def _figure_json(result: report.AnalysisResult | None) -> str | None:
    if result is None:
        return None
    main = result.ranking.table[["condition", "score", "ci_low", "ci_high"]]
    label = "Bradley–Terry score (centred log-strength)" if result.kind == "pairwise" else "MOS"
    fig = plots.interval_plot(main, result.by_reason or None, score_label=label)
    return fig.to_json()


@bp.get("/plotly.min.js")
@accounts.login_required
def plotly_js() -> Response:
    # Served from the installed plotly package: no CDN, works offline and behind firewalls.
    # Behind the login like every console route (only the leaderboard uses it).
    response = Response(_plotly_source(), mimetype="application/javascript")
    response.cache_control.max_age = 86400
    response.cache_control.private = True
    return response


@cache
def _plotly_source() -> str:
    return get_plotlyjs()


@bp.get("/studies/<slug>/export/<name>")
@accounts.login_required
def export(slug: str, name: str) -> Response:
    """Download votes (CSV/Parquet) or an analysis file — the files ``export``/``analyze`` write."""
    study = own_study(slug)
    if name in VOTE_FILES:
        return _send_votes(study, name)
    if name not in REPORT_FILES:
        abort(404)
    try:
        result = _analysis(study, _ties(), selected_rules())
    except ValueError as exc:  # as on the leaderboard page: too few votes to determine the scores yet
        if name == "raters.csv":
            # The leaderboard's "screening dropped every rater; see raters.csv" must lead somewhere:
            # the screening table needs no ranking.
            return _send_screening(study)
        abort(409, description=f"The votes cannot be analysed yet: {exc}")
    if result is None:
        abort(409, description="No votes yet: there is nothing to analyse.")
    with tempfile.TemporaryDirectory(prefix="panelrank-export-") as tmp:
        out = report.write_report(result, Path(tmp) / "report")
        data = (out / name).read_bytes()
    mimetype = "text/html" if name.endswith(".html") else "text/csv"
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                     download_name=f"{study.slug}-{name}")


def _send_screening(study: Study) -> Response:
    """raters.csv from the screening alone (what ``report.write_report`` writes as raters.csv)."""
    frame = livestats.accepted_votes(get_db(), study)
    if frame.empty:
        abort(409, description="No votes yet: there is nothing to analyse.")
    data = screening.screen(frame, livestats.rules_from(selected_rules())).raters.to_csv(index=False).encode()
    return send_file(io.BytesIO(data), mimetype="text/csv", as_attachment=True,
                     download_name=f"{study.slug}-raters.csv")


def _send_votes(study: Study, name: str) -> Response:
    fmt = name.rpartition(".")[2]
    data = livestats.vote_file(livestats.votes(get_db(), study), fmt)
    return send_file(io.BytesIO(data), mimetype=livestats.VOTE_FORMATS[fmt], as_attachment=True,
                     download_name=f"{study.slug}-{name}")


def _fmt(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.3f}"


bp.add_app_template_filter(_fmt, "score")
