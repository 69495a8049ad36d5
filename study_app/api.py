"""Read-only JSON API for scripts and notebooks, under ``/api/v1``.

Every ``/api/v1`` request carries ``Authorization: Bearer <token>`` (``panelrank
create-token``); the token acts as its organizer, who sees only their own studies (an
admin sees all). No cookies are read or set, so there is nothing for CSRF to ride on.
Every error is ``{"error": message}``. The document at ``/api/openapi.json``
(:mod:`study_app.openapi`) describes all of it and is checked against these routes in tests.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from flask import Blueprint, Flask, g, jsonify, request, url_for
from sqlalchemy import Select, select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from analysis import bradley_terry as bt
from analysis import report
from study_app import livestats, openapi, tokens
from study_app.db import get_db
from study_app.models import SESSION_STATUSES, Organizer, Study
from study_app.progress import study_progress
from study_app.schemas import CONTROL
from study_app.studies import study_counts

PREFIX = "/api"
api = Blueprint("api", __name__, url_prefix=PREFIX)
v1 = Blueprint("v1", __name__, url_prefix="/v1")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
DEFAULT_BOOTSTRAP = 200
#: Bootstrap rounds a request may ask for: each round refits the model, so the cap bounds the work.
MAX_BOOTSTRAP = 1000
#: Manifest settings shown in a study's detail (the rest is either large or rater-facing text).
SETTINGS = ("design", "k", "votes_per_item", "trials_per_session", "repeats_per_session", "gold_per_session",
            "max_sessions_per_rater", "seed", "language", "reasons")
DOWNLOADS = livestats.VOTE_FORMATS


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


@api.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error(exc.status, exc.message)


def _http_error(exc: HTTPException) -> HTTPException | Response:
    """JSON instead of Flask's HTML error pages for anything under ``/api/`` (unknown paths too)."""
    if not request.path.startswith(PREFIX + "/"):
        return exc  # what Flask does without a handler: other blueprints keep their pages
    # Keep the exception's own headers (405's Allow) but not its HTML content type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error(exc.code or 500, exc.description or exc.name, headers)


def init_app(app: Flask) -> None:
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, _http_error)


# --------------------------------------------------------------------------- auth
@v1.before_request
def _authenticate() -> Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("send the header 'Authorization: Bearer <token>' (see `panelrank create-token`)")
    row = tokens.find_active(get_db(), token.strip())
    if row is None:
        return _unauthorized("the token is unknown or revoked", invalid=True)
    if tokens.touch(row):
        get_db().commit()
    g.api_organizer = row.organizer
    return None


def _unauthorized(message: str, invalid: bool = False) -> Response:
    # RFC 6750: a challenge always; error="invalid_token" only when a token was sent.
    challenge = 'Bearer realm="panelrank"' + (', error="invalid_token"' if invalid else "")
    return error(401, message, {"WWW-Authenticate": challenge})


def organizer() -> Organizer:
    return g.api_organizer


def visible_studies() -> Select[tuple[Study]]:
    query = select(Study).order_by(Study.created_at.desc(), Study.id.desc())
    if organizer().role != "admin":
        query = query.where(Study.organizer_id == organizer().id)
    return query


def find_study(slug: str) -> Study:
    """The study if the token's organizer may see it; 404 otherwise (no hint that it exists)."""
    if CONTROL.search(slug):  # never a slug; PostgreSQL would refuse a NUL in the query with a 500
        raise ApiError(404, "no study with that slug")
    study = get_db().scalar(visible_studies().where(Study.slug == slug))
    if study is None:
        raise ApiError(404, f"no study '{slug}'")
    return study


# --------------------------------------------------------------------------- OpenAPI
@api.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(openapi.document())


# --------------------------------------------------------------------------- studies
@v1.get("/studies")
def studies() -> Response:
    db = get_db()
    found = db.scalars(visible_studies()).all()
    counts = study_counts(db, found)
    return jsonify({"studies": [summary(s, counts[s.id]) for s in found]})


@v1.get("/studies/<slug>")
def study(slug: str) -> Response:
    db = get_db()
    found = find_study(slug)
    return jsonify({
        **summary(found, study_counts(db, [found])[found.id]),
        "settings": {k: found.manifest.get(k) for k in SETTINGS},
        "conditions": [{"key": c.key, "label": c.label, "role": c.role, "position": c.position}
                       for c in found.conditions],
        "contents": len(found.contents),
        "links": {name: url_for(f"api.v1.{name}", slug=slug) for name in ("progress", "votes", "leaderboard")},
    })


def summary(study: Study, counts: dict[str, int]) -> dict[str, Any]:
    """A study's listing entry; ``counts`` as :func:`study_app.studies.study_counts` gives them."""
    return {
        "slug": study.slug, "name": study.name, "method": study.method,
        "kind": "pairwise" if study.pairwise else "ratings", "status": study.status, "panel": study.panel,
        "created_at": study.created_at.isoformat(), "organizer": study.organizer.email if study.organizer else None,
        "counts": {
            "sessions": {s: counts.get(s, 0) for s in SESSION_STATUSES},
            "trials": counts["trials"],
            "votes": counts["votes"],
        },
    }


@v1.get("/studies/<slug>/progress")
def progress(slug: str) -> Response:
    return jsonify(study_progress(get_db(), find_study(slug)))


# --------------------------------------------------------------------------- votes
@v1.get("/studies/<slug>/votes")
def votes(slug: str) -> Response:
    found = find_study(slug)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", *DOWNLOADS):
        raise ApiError(400, f"format must be json, csv or parquet, not '{fmt}'")
    frame = livestats.votes(get_db(), found)
    since = parse_since(request.args.get("since"))
    if since is not None:
        frame = frame[frame["answered_at"] >= since]
    if fmt != "json":
        if "limit" in request.args or "offset" in request.args:
            raise ApiError(400, "limit and offset page the JSON records; a download is always whole")
        return download(frame, found.slug, fmt)
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_arg("offset", 0, 0, None)
    page = frame.iloc[offset:offset + limit]
    return jsonify({
        "study": found.slug, "kind": "pairwise" if found.pairwise else "ratings",
        "total": len(frame), "offset": offset, "limit": limit,
        "next_offset": offset + limit if offset + limit < len(frame) else None,
        "votes": json.loads(page.to_json(orient="records", date_format="iso", date_unit="us")),
    })


def parse_since(raw: str | None) -> pd.Timestamp | None:
    if raw is None:
        return None
    candidates = [raw]
    if " " in raw.strip():
        # An unencoded '+' in a query string arrives as a space: '…T10:00:00 01:00'.
        head, _, tail = raw.strip().rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for text in candidates:
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            continue
        return pd.Timestamp(t if t.tzinfo else t.replace(tzinfo=UTC))  # naive times are UTC, like ours
    raise ApiError(400, f"since must be an ISO 8601 time such as 2026-01-31T12:00:00Z, not '{raw}'")


def int_arg(name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"{name} must be a whole number {bounds}, not '{raw}'")
    return value


def download(frame: pd.DataFrame, slug: str, fmt: str) -> Response:
    # The same bytes `panelrank export` writes and the console's export offers.
    return Response(livestats.vote_file(frame, fmt), mimetype=DOWNLOADS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{slug}-votes.{fmt}"'})


# --------------------------------------------------------------------------- leaderboard
@v1.get("/studies/<slug>/leaderboard")
def leaderboard(slug: str) -> Response:
    db = get_db()
    found = find_study(slug)
    ties = request.args.get("ties", "davidson")
    if ties not in bt.TIE_MODELS:
        raise ApiError(400, f"ties must be one of {', '.join(bt.TIE_MODELS)}, not '{ties}'")
    ci = request.args.get("ci", "cluster")
    if ci not in report.CI_CHOICES:
        raise ApiError(400, f"ci must be one of {', '.join(report.CI_CHOICES)}, not '{ci}'")
    bootstrap = int_arg("bootstrap", DEFAULT_BOOTSTRAP, 2, MAX_BOOTSTRAP)
    rules = selected_rules()
    try:
        result = livestats.leaderboard(db, found, livestats.rules_from(rules), ties=ties, ci=ci,
                                       bootstrap=bootstrap)
    except ValueError as exc:  # FrameError, ComparisonGraphError, "screening dropped every rater"
        raise ApiError(409, f"no leaderboard yet: {exc}") from exc
    head = {"study": found.slug, "kind": "pairwise" if found.pairwise else "ratings", "ties": ties,
            "ci": ci, "bootstrap": bootstrap if ci == "bootstrap" else 0, "rules": rules,
            "votes": livestats.fingerprint(db, found).votes}
    if result is None:
        return jsonify({**head, "model": None, "interval": None, "confidence": 0.95, "rows": [], "groups": [],
                        "unresolved": [], "raters": {"total": 0, "kept": 0, "dropped": 0},
                        "notes": ["no votes yet"]})
    return jsonify({**head, **result_body(found, result)})


def selected_rules() -> list[str]:
    """``rule=gold&rule=bt500`` as on the raters page; no ``rule`` and no ``rules`` = the defaults.

    ``rules`` present (any value, e.g. ``rules=none``) means exactly the ``rule`` values
    given — so ``?rules=none`` screens nobody out.
    """
    if "rule" not in request.args and "rules" not in request.args:
        return list(livestats.DEFAULT_ON)
    chosen = request.args.getlist("rule")
    unknown = sorted(set(chosen) - set(livestats.RULE_FIELDS))
    if unknown:
        raise ApiError(400, f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(livestats.RULE_FIELDS)}")
    return [r for r in livestats.RULE_FIELDS if r in chosen]


def result_body(study: Study, result: report.AnalysisResult) -> dict[str, Any]:
    rank_by = result.params.get("rank_by")
    scores = result.scores.set_index("condition")
    se = scores["se"]
    conditions = {c.key: c for c in study.conditions}
    rows = []
    for r in report.ranking_frame(result).to_dict("records"):
        cond = conditions.get(str(r["condition"]))
        rows.append({
            "rank": r["rank"], "condition": r["condition"], "label": cond.label if cond else None,
            "role": cond.role if cond else None, "score": r["score"], "se": se.get(r["condition"]),
            "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_votes": scores["n_votes"].get(r["condition"]),
            "group": r["group"], "rank_low": r.get("rank_low"), "rank_high": r.get("rank_high"),
            "separated_by": r["separated_by"],
        })
    unresolved = [{"upper": u["upper"], "lower": u["lower"], "p_adjusted": u["p_adjusted"]}
                  for u in result.unresolved.to_dict("records")]
    counts = result.counts
    return plain({
        "model": "bradley-terry" if result.kind == "pairwise" else result.params.get("measure", "mos"),
        "interval": rank_by, "confidence": 1 - result.params.get("alpha", 0.05),
        "rows": rows, "groups": result.groups, "unresolved": unresolved,
        "raters": {"total": counts.get("raters", 0), "kept": counts.get("raters_kept", 0),
                   "dropped": counts.get("raters_dropped", 0)},
        "notes": list(result.notes),
    })


def plain(value: Any) -> Any:
    """numpy scalars → Python, NaN/inf → None: JSON has no NaN, and Flask would write it anyway."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is None:
        return None
    return value


# Nested once, here, after v1's routes exist: a blueprint cannot be set up again once an app registered it.
api.register_blueprint(v1)
