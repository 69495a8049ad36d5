"""The rater blueprint and what its pages and JSON API share: request checks, refusals,
the study of a URL and the rater behind a request.

Routes attach to :data:`bp` in :mod:`study_app.rater.pages` and :mod:`study_app.rater.api`.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, render_template, request
from sqlalchemy.orm import Session as DBSession
from werkzeug.wrappers import Response

from study_app import csrf, scheduling
from study_app.db import get_db
from study_app.i18n import current_lang, t
from study_app.models import Rater, Session, Study
from study_app.rater import identity
from study_app.rater.identity import Identity, Refusal
from study_app.schemas import CONTROL, read_limited
from study_app.studies import get_study

bp = Blueprint("rater", __name__)
API_MAX_BYTES = 16 * 1024


@bp.before_request
def _protect() -> Response | None:
    is_api = (request.endpoint or "").startswith("rater.api_")
    if (refused := _bad_address(is_api)) is not None:
        return refused
    # The JSON API is CSRF-safe by requiring a JSON body (a cross-site form cannot send one);
    # refuse anything else there with a JSON error rather than an HTML page.
    if is_api and request.method == "POST":
        if not request.is_json:
            return api_error(415, "api.bad_json")
        # Content-Length may be absent (chunked) or lie: read at most one byte past the limit.
        raw = None if (request.content_length or 0) > API_MAX_BYTES else read_limited(request.stream, API_MAX_BYTES)
        if raw is None:
            return api_error(413, "api.too_large")
        g.json_body = raw
        return None
    csrf.protect()
    return None


def _bad_address(is_api: bool) -> Response | None:
    """Refuse control characters (NUL above all: PostgreSQL cannot store or compare it) in the
    path and the query string before anything reaches the database."""
    if CONTROL.search(request.path):
        if is_api:
            return api_error(404, "refuse.not_found.title")
        raise Refusal("not_found", 404)
    if any(CONTROL.search(part) for item in request.args.items(multi=True) for part in item):
        if is_api:
            return api_error(400, "api.bad_address")
        raise Refusal("bad_id", 400)
    return None


@bp.after_request
def _no_store(resp: Response) -> Response:
    # Every rater page and API answer depends on where the session is now: Back/Forward must
    # ask the server again, never show a stored copy (no-store also keeps pages out of the
    # back/forward cache).
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.context_processor
def _lang() -> dict[str, str]:
    return {"lang": current_lang()}


def api_error(status: int, key: str, **values: object) -> Response:
    resp = jsonify({"error": t(key, **values)})
    resp.status_code = status
    return resp


@bp.errorhandler(Refusal)
def _refused(exc: Refusal) -> tuple[str, int]:
    return render_template("rater/message.html", title=t(f"refuse.{exc.key}.title", **exc.values),
                           body=t(f"refuse.{exc.key}.body", **exc.values), kind=exc.key), exc.status


def load_study(slug: str) -> Study:
    study = get_study(get_db(), slug)
    if study is None:
        raise Refusal("not_found", 404)
    g.lang = study.manifest.get("language") or "en"
    g.study = study
    return study


def require_open(study: Study) -> None:
    if study.status == "paused":
        raise Refusal("paused", 503)
    if study.status == "closed":
        raise Refusal("closed", 410)


def expire_idle(db: DBSession, study: Study) -> None:
    """Expire the study's idle sessions (committed at once: it is the request's only write so far)."""
    if scheduling.expire_idle(db, study):
        db.commit()


def current(db: DBSession, study: Study) -> tuple[Identity | None, Rater | None, Session | None]:
    """The rater known from the cookie and their latest session (each may be None).

    Idle sessions of the study expire first, so a rater coming back after the timeout finds theirs expired.
    """
    expire_idle(db, study)
    ident = identity.remembered(study)
    rater = identity.find_rater(db, study, ident) if ident else None
    sess = scheduling.latest_session(db, rater) if rater else None
    return ident, rater, sess
