"""Login, logout and the organizer's account (password, logins)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from study_app import accounts
from study_app.db import get_db
from study_app.organizer.common import bp, me, safe_next


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "POST":
        db = get_db()
        organizer = accounts.authenticate(db, request.form.get("email", ""), request.form.get("password", ""))
        if organizer is not None:
            accounts.log_in(db, organizer)
            db.commit()
            return redirect(safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
        return render_template("organizer/login.html"), 401
    return render_template("organizer/login.html")


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
