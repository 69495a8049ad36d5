"""The organizer's console: login and the list of studies."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from study_app import accounts, csrf
from study_app.db import get_db
from study_app.models import Study
from study_app.studies import study_counts

bp = Blueprint("organizer", __name__, url_prefix="/organizer")
bp.before_request(csrf.protect)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if request.method == "POST":
        organizer = accounts.authenticate(get_db(), request.form.get("email", ""), request.form.get("password", ""))
        if organizer is not None:
            session.clear()
            session["organizer_id"] = organizer.id
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
        return render_template("organizer/login.html"), 401  # type: ignore[return-value]
    return render_template("organizer/login.html")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never bounce a fresh login to another host.
    if target and target.startswith("/") and not urlparse(target).netloc and not target.startswith("//"):
        return target
    return url_for("organizer.studies")


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("organizer.login"))


@bp.get("/")
@accounts.login_required
def studies() -> str:
    me = accounts.current_organizer()
    assert me is not None
    db = get_db()
    query = select(Study).order_by(Study.created_at.desc())
    if me.role != "admin":
        query = query.where(Study.organizer_id == me.id)
    rows = [(s, study_counts(db, s)) for s in db.scalars(query)]
    return render_template("organizer/studies.html", rows=rows, me=me)
