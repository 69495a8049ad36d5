"""The participant's pages: entry → instructions/consent → screen check → study → completion.

Every refusal (paused, closed, full, cap reached, bad link) is a friendly page.
"""

from __future__ import annotations

import re

from flask import g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session as DBSession
from werkzeug.wrappers import Response

from study_app import scheduling
from study_app.db import get_db
from study_app.i18n import catalog, t
from study_app.models import Rater, Session, Study, utcnow
from study_app.rater import flow, identity
from study_app.rater.blueprint import bp, current, expire_idle, load_study, require_open
from study_app.rater.identity import Identity, Refusal


def check_can_start(db: DBSession, study: Study, rater: Rater | None) -> None:
    """Refuse a new session: study not open, rater screened out, cap reached, or nothing left for this rater.

    Not when the rater holds an active session after all: a concurrent consent of theirs (another tab,
    a retried request) has just claimed it, and this request's claim will resume it.
    """
    require_open(study)
    if rater is not None and scheduling.is_out(rater) and scheduling.active_session(db, rater) is None:
        raise Refusal("screened_out", 403)
    capped = rater is not None and scheduling.sessions_taken(db, rater) >= study.max_sessions_per_rater
    full = scheduling.work_left(db, study, rater) == 0
    # Read after the counts, so a claim that committed in between is seen here.
    if (capped or full) and rater is not None and scheduling.active_session(db, rater) is not None:
        return
    if capped:
        raise Refusal("max_sessions", 403, n=study.max_sessions_per_rater)
    if full:
        raise Refusal("full", 503)


def _resume(study: Study, sess: Session) -> Response:
    if sess.status == "completed":
        return redirect(url_for("rater.done", slug=study.slug))
    if sess.status == "screened_out":
        return redirect(url_for("rater.screened_out", slug=study.slug))
    if sess.status == "expired":
        return redirect(url_for("rater.expired", slug=study.slug))
    return redirect(url_for(flow.step_endpoint(sess), slug=study.slug))


@bp.get("/s/<slug>")
def entry(slug: str) -> Response:
    db = get_db()
    study = load_study(slug)
    ident = identity.from_request(study)
    identity.remember(study, ident)
    rater = identity.find_rater(db, study, ident)
    expire_idle(db, study)
    sess = scheduling.latest_session(db, rater) if rater else None
    if sess is not None and sess.status in ("active", "completed", "screened_out", "expired"):
        if sess.status == "active":
            require_open(study)
        return _resume(study, sess)
    check_can_start(db, study, rater)
    # The marker lets the next page tell "cookie refused" from "never visited" (no redirect loop).
    return redirect(url_for("rater.welcome", slug=slug, arrived=1))


@bp.route("/s/<slug>/welcome", methods=["GET", "POST"])
def welcome(slug: str) -> Response | tuple[str, int] | str:
    db = get_db()
    study = load_study(slug)
    ident, rater, sess = current(db, study)
    if ident is None:
        if request.args.get("arrived"):
            raise Refusal("no_cookies", 400)
        return redirect(url_for("rater.entry", slug=slug))
    active = sess if sess is not None and sess.status == "active" else None
    if active is not None:
        require_open(study)
        if flow.step_endpoint(active) != "rater.welcome":
            return _resume(study, active)
    elif sess is not None and sess.status == "screened_out":
        return _resume(study, sess)
    else:
        check_can_start(db, study, rater)
    if request.method == "GET":
        return _welcome_page(study)
    if request.form.get("consent") != "yes":
        return _welcome_page(study, error=t("welcome.consent_required")), 400
    return _consent(db, study, ident, active)


def _welcome_page(study: Study, error: str | None = None) -> str:
    return render_template("rater/welcome.html", study=study, hint=t(study.test_method.hint), error=error,
                           instructions=paragraphs(study.manifest.get("instructions") or ""))


_LIST_ITEM = re.compile(r"^\s*([-*•]|\d+[.)])\s")


def paragraphs(text: str) -> list[list[str]]:
    """Instructions as paragraphs of lines, the way a person reads the YAML they wrote.

    A YAML block (``|``) keeps the organizer's line wrapping, which would look ragged
    in a browser window of another width: blank lines separate paragraphs, a wrapped
    line joins the previous one, and a line that starts a list item (``-``, ``*``,
    ``1.``) starts a new line.
    """
    out: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
        if lines:
            out.append(lines)
    return out


def _consent(db: DBSession, study: Study, ident: Identity, active: Session | None) -> Response:
    if active is None:
        rater = identity.ensure_rater(db, study, ident)
        try:
            active = scheduling.claim_session(db, study, rater)
        except scheduling.SessionHeld as held:
            # Another consent of this rater (a second tab, a retried request) claimed first: both continue
            # on that one session, which its consent has already marked.
            db.rollback()
            return _resume(study, held.session)
        except scheduling.CapReached:
            db.rollback()
            raise Refusal("max_sessions", 403, n=study.max_sessions_per_rater) from None
        if active is None:
            db.rollback()
            raise Refusal("full", 503)
        active.panel_session_id = ident.panel_session_id
        if ident.extra:
            flow.set_env(active, panel=ident.extra)
    flow.set_env(active, consent_at=utcnow().isoformat())
    db.commit()
    return redirect(url_for("rater.check", slug=study.slug))


def _active_or_resume(db: DBSession, study: Study, endpoint: str) -> Session | Response:
    """The rater's active session when ``endpoint`` is its current step, else where to go instead."""
    _, _, sess = current(db, study)
    if sess is None:
        return redirect(url_for("rater.entry", slug=study.slug))
    if sess.status != "active":
        return _resume(study, sess)
    require_open(study)
    if flow.step_endpoint(sess) != endpoint:
        return _resume(study, sess)
    return sess


@bp.get("/s/<slug>/check")
def check(slug: str) -> Response | str:
    db = get_db()
    study = load_study(slug)
    if isinstance(sess := _active_or_resume(db, study, "rater.check"), Response):
        return sess
    shown = flow.display_of(db, study)
    min_w, min_h = flow.window_need(shown, 1.0)
    config = {"display": shown.as_config(), "allow_mobile": bool(study.manifest["environment"]["allow_mobile"]),
              "api": url_for("rater.api_environment", slug=slug), "strings": catalog(g.lang)}
    hint = t(f"check.display.{shown.display}") if shown.layout == "pair" and shown.display != "scaled" else None
    return render_template("rater/check.html", study=study, config=config, min_w=min_w, min_h=min_h,
                           display_hint=hint)


@bp.get("/s/<slug>/study", endpoint="study")
def study_page(slug: str) -> Response | str:
    study = load_study(slug)
    if isinstance(sess := _active_or_resume(get_db(), study, "rater.study"), Response):
        return sess
    config = {
        "api": {
            "session": url_for("rater.api_session", slug=slug),
            "trial": url_for("rater.api_trial", slug=slug),
            "vote": url_for("rater.api_vote", slug=slug),
            "training": url_for("rater.api_training", slug=slug),
            "training_done": url_for("rater.api_training_done", slug=slug),
        },
        # The test method's registry entry: vote.js draws the answers from it (catalog keys in "strings").
        "method": study.test_method.to_json(),
        "display": flow.display_of(get_db(), study).as_config(),
        "entry": url_for("rater.entry", slug=slug),
        "reasons": list(study.manifest.get("reasons") or []) if study.pairwise else [],
        "strings": catalog(g.lang),
    }
    return render_template("rater/study.html", study=study, config=config)


@bp.get("/s/<slug>/done")
def done(slug: str) -> Response | str:
    db = get_db()
    study = load_study(slug)
    _, rater, sess = current(db, study)
    if rater is None or sess is None or sess.status != "completed":
        return redirect(url_for("rater.entry", slug=slug))
    return render_template("rater/done.html", study=study, exit=flow.completion(study, sess),
                           another=_sessions_left(db, study, rater))


def _sessions_left(db: DBSession, study: Study, rater: Rater) -> int:
    """Sessions the rater may still start now (0 when the cap, the study or their screening says none)."""
    left = study.max_sessions_per_rater - scheduling.sessions_taken(db, rater)
    can_continue = (left > 0 and not scheduling.is_out(rater) and study.status == "open"
                    and scheduling.work_left(db, study, rater) > 0)
    return left if can_continue else 0


@bp.get("/s/<slug>/expired")
def expired(slug: str) -> Response | str:
    """A rater whose session expired: what happened, and a new session if they may start one."""
    db = get_db()
    study = load_study(slug)
    _, rater, sess = current(db, study)
    if rater is None or sess is None or sess.status != "expired":
        return redirect(url_for("rater.entry", slug=slug))
    answered = flow.answered_count(db, sess)
    minutes = f"{scheduling.timeout(study).total_seconds() / 60:g}"
    return render_template("rater/expired.html", study=study, minutes=minutes, answered=answered,
                           another=_sessions_left(db, study, rater))


@bp.get("/s/<slug>/screened-out")
def screened_out(slug: str) -> Response | str:
    db = get_db()
    study = load_study(slug)
    _, _, sess = current(db, study)
    if sess is None or sess.status != "screened_out":
        return redirect(url_for("rater.entry", slug=slug))
    why = flow.env(sess).get("screen_out") or {}
    reason = t(why["key"], **why.get("values", {})) if why.get("key") else None
    return render_template("rater/screened_out.html", study=study, reason=reason, exit=flow.screen_out_exit(study))
