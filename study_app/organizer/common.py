"""The console's blueprint and what every console page shares: who is logged in, which
studies they may open, safe redirects, and errors shown as console pages."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, abort, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from study_app import accounts, csrf
from study_app.db import get_db
from study_app.models import Organizer, Study
from study_app.studies import get_study

bp = Blueprint("organizer", __name__, url_prefix="/organizer")
bp.before_request(csrf.protect)


def safe_next(target: str | None, default: str | None = None) -> str:
    # Only same-site paths: never bounce a fresh login (or a form's "back" field) to another host.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and not urlparse(target).netloc:
        return target
    return default or url_for("organizer.studies")


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> HTTPException | tuple[str, int]:
    """Errors inside the console as a page of the console (with a way back), not a bare one."""
    if exc.code is None or exc.code < 400:
        return exc  # redirects raised as exceptions stay what they are
    title, message = exc.name, exc.description or exc.name
    if exc.code == 429:  # a throttled password form (study_app.limits); Retry-After says when to retry
        title = "Too many attempts"
    elif exc.code == 413:
        title = "Upload too large"
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        message = (f"The upload is larger than the server accepts ({limit / 2**20:.0f} MB). A manifest and its "
                   "stimulus list are small text files: upload those, not the videos (the manifest points at them).")
    referrer = urlparse(request.referrer or "")
    same_page = referrer.path == request.path and request.method == "GET"
    back = referrer.path if referrer.netloc == request.host and not same_page else None
    return render_template("organizer/error.html", me=accounts.current_organizer(), code=exc.code,
                           title=title, message=message, back=safe_next(back, "") if back else None), exc.code


def me() -> Organizer:
    organizer = accounts.current_organizer()
    assert organizer is not None, "views using me() are behind login_required"
    return organizer


def own_study(slug: str) -> Study:
    """The study if the logged-in organizer may see it; 404 otherwise (no hint that it exists)."""
    study = get_study(get_db(), slug)
    organizer = me()
    if study is None or (organizer.role != "admin" and study.organizer_id != organizer.id):
        abort(404)
    return study
