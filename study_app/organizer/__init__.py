"""The organizer's console: login and account, studies (list, upload, open/pause/close, settings), progress."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from study_app import accounts, csrf
from study_app.db import get_db
from study_app.models import STUDY_STATUSES, Organizer, Study
from study_app.studies import get_study, study_counts

bp = Blueprint("organizer", __name__, url_prefix="/organizer")
bp.before_request(csrf.protect)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "POST":
        db = get_db()
        organizer = accounts.authenticate(db, request.form.get("email", ""), request.form.get("password", ""))
        if organizer is not None:
            accounts.log_in(db, organizer)
            db.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
        return render_template("organizer/login.html"), 401
    return render_template("organizer/login.html")


def _safe_next(target: str | None, default: str | None = None) -> str:
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
                           title=title, message=message, back=_safe_next(back, "") if back else None), exc.code


@bp.post("/logout")
def logout() -> Response:
    accounts.log_out()
    get_db().commit()
    return redirect(url_for("organizer.login"))


@bp.get("/account")
@accounts.login_required
def account() -> str:
    return _account_page()


def _account_page(problem: str | None = None) -> str:
    return render_template("organizer/account.html", me=me(), problem=problem,
                           logins=accounts.active_logins(get_db(), me()), this_login=accounts.current_login(),
                           idle_days=accounts.IDLE_TIMEOUT.days)


@bp.post("/account/password")
@accounts.login_required
def change_password() -> Response | tuple[str, int]:
    db, organizer, new = get_db(), me(), request.form.get("new_password", "")
    if not accounts.password_matches(organizer, request.form.get("password", "")):
        return _account_page("the current password is wrong"), 401  # 401: counted as a failed attempt
    if new != request.form.get("confirm_password", ""):
        return _account_page("the new password and its repetition differ"), 400
    try:
        ended = accounts.set_password(organizer, new, keep=accounts.current_login())
    except accounts.AccountError as exc:
        return _account_page(str(exc)), 400
    db.commit()
    flash(f"Password changed; other browsers logged out: {ended}.", "info")
    return redirect(url_for("organizer.account"))


@bp.post("/logout-everywhere")
@accounts.login_required
def logout_everywhere() -> Response:
    db = get_db()
    ended = accounts.end_logins(db, me())
    accounts.log_out()
    db.commit()
    flash(f"Logged out everywhere: {ended} login(s) ended, this one included.", "info")
    return redirect(url_for("organizer.login"))


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


@bp.get("/")
@accounts.login_required
def studies() -> str:
    db = get_db()
    query = select(Study).order_by(Study.created_at.desc())
    if me().role != "admin":
        query = query.where(Study.organizer_id == me().id)
    found = db.scalars(query).all()
    counts = study_counts(db, found)
    rows = [(s, counts[s.id]) for s in found]
    return render_template("organizer/studies.html", rows=rows, me=me())


@bp.post("/studies/<slug>/status")
@accounts.login_required
def set_status(slug: str) -> Response:
    study = own_study(slug)
    status = request.form.get("status", "")
    if status not in STUDY_STATUSES:
        abort(400, description=f"unknown status '{status}'; known: {', '.join(STUDY_STATUSES)}")
    study.status = status
    get_db().commit()
    flash(f"Study '{slug}' is now {status}.", "info")
    return redirect(_safe_next(request.form.get("back"), url_for("organizer.study", slug=slug)))


from study_app.organizer import pages, quality, results  # noqa: E402,F401  (attach their routes to ``bp``)
