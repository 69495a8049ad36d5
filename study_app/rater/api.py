"""The JSON API of the study page: environment gate, session plan, trials, votes, training.

Every refusal is ``{"error": message}`` with a meaningful status. Bodies are validated by
the models of :mod:`study_app.schemas` (a refusal names the field). Votes are idempotent:
the identical answer resubmitted returns the same 200 body, also when the two arrive at
once; a different answer for an answered trial is a 409.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response as HTTPResponse

from study_app import scheduling
from study_app.db import get_db
from study_app.i18n import t
from study_app.models import Rater, Response, Session, Study, Trial, utcnow
from study_app.rater import flow
from study_app.rater.blueprint import api_error as error
from study_app.rater.blueprint import bp, current
from study_app.rater.blueprint import load_study as _load_study
from study_app.rater.identity import Refusal
from study_app.schemas import CONTROL, BodyError, EnvironmentCheck, M, TrainingAnswer, TrainingDone, Vote, parse


class ApiError(Exception):
    def __init__(self, status: int, key: str, **values: Any) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> HTTPResponse:
    return error(exc.status, exc.key, **exc.values)


def _context(db: DBSession, slug: str, statuses: tuple[str, ...] = ("active",)) -> tuple[Study, Rater, Session]:
    """Study, rater and latest session, refusing as JSON when any is missing or not usable."""
    try:
        study = _load_study(slug)
    except Refusal as exc:
        raise ApiError(404, "refuse.not_found.title") from exc
    _, rater, sess = current(db, study)
    if rater is None or sess is None:
        raise ApiError(403, "api.no_session")
    if sess.status == "screened_out":
        raise ApiError(403, "api.screened_out")
    if sess.status == "expired":
        raise ApiError(410, "api.session_expired")
    if sess.status not in statuses:
        raise ApiError(403, "api.no_session")
    if study.status != "open":
        raise ApiError(403, f"api.{study.status}")
    return study, rater, sess


def _body(model: type[M]) -> M:
    """The request's JSON body (read and size-checked by the blueprint's guard) as ``model``."""
    try:
        return parse(model, g.get("json_body", b""))
    except BodyError as exc:
        if exc.field is None:
            raise ApiError(400, exc.key, **exc.values) from None
        raise ApiError(400, "api.bad_field", field=exc.field, why=t(exc.key, **exc.values)) from None


# --------------------------------------------------------------------------- environment gate


@bp.post("/s/<slug>/api/environment")
def api_environment(slug: str) -> HTTPResponse:
    db = get_db()
    study, rater, sess = _context(db, slug)
    if flow.step_endpoint(sess) != "rater.check":
        raise ApiError(409, "api.not_ready")
    data = _body(EnvironmentCheck)
    measured: dict[str, Any] = data.model_dump(exclude={"cannot"})
    # Control characters are dropped: the gate is stored as JSON text (PostgreSQL refuses NUL).
    measured["user_agent"] = CONTROL.sub("", request.headers.get("User-Agent", ""))[:300]
    need = flow.window_need(flow.display_of(db, study), measured["dpr"])
    failure = _gate_failure(study, measured, need)
    if failure is not None and failure[0] == "reason.window" and not data.cannot:
        # Too small is something the rater can fix (resize, full screen): only their own
        # "I cannot" ends the session, never one early click.
        raise ApiError(422, "api.window_small", **failure[1])
    flow.set_env(sess, gate=measured)
    sess.last_seen_at = utcnow()
    if failure is not None:
        flow.screen_out(sess, rater, *failure)
        db.commit()
        return jsonify({"ok": False, "redirect": _url("rater.screened_out", study)})
    db.commit()
    return jsonify({"ok": True, "redirect": _url("rater.study", study)})


def _gate_failure(study: Study, m: dict[str, Any], need: tuple[int, int]) -> tuple[str, dict[str, Any]] | None:
    if m["mobile"] and not study.manifest["environment"].get("allow_mobile"):
        return "reason.mobile", {}
    if m["inner_w"] < need[0] or m["inner_h"] < need[1]:
        return "reason.window", {"w": m["inner_w"], "h": m["inner_h"], "min_w": need[0], "min_h": need[1]}
    return None


def _url(endpoint: str, study: Study) -> str:
    return url_for(endpoint, slug=study.slug)


# --------------------------------------------------------------------------- plan and trials


def _ready(db: DBSession, slug: str, statuses: tuple[str, ...] = ("active",)) -> tuple[Study, Rater, Session]:
    study, rater, sess = _context(db, slug, statuses)
    if sess.status == "active" and not flow.ready_for_trials(sess):
        raise ApiError(409, "api.not_ready")
    return study, rater, sess


@bp.get("/s/<slug>/api/session")
def api_session(slug: str) -> HTTPResponse:
    db = get_db()
    study, _, sess = _ready(db, slug)
    training = not flow.env(sess).get("training_done") and bool(study.manifest.get("training"))
    items = flow.training_items(db, study) if training else []
    n, nxt = flow.plan_state(db, sess)
    layout = flow.layout_of(study)
    return jsonify({
        "n": n,
        "next": nxt,
        "layout": layout,
        "media": flow.media_list(db, study, sess, with_training=training),
        "training": [
            {"item": i, "k": i + 1, "n": len(items), "layout": layout, "clips": it["clips"]}
            for i, it in enumerate(items)
        ],
    })


@bp.get("/s/<slug>/api/trial")
def api_trial(slug: str) -> HTTPResponse:
    db = get_db()
    study, _, sess = _ready(db, slug, statuses=("active", "completed"))
    trial = flow.next_trial(db, sess)
    if trial is None:
        return jsonify({"done": True, "redirect": flow.done_url(study)})
    return jsonify(flow.trial_payload(db, study, sess, trial))


# --------------------------------------------------------------------------- votes


def _on_scale(study: Study, answer: int) -> int:
    """``answer`` when it is on the study's scale (the model made it a bounded whole number)."""
    method = study.test_method
    if not method.on_screen(answer):
        raise ApiError(400, "api.off_scale", value=answer, low=method.screen_low, high=method.screen_high)
    return answer


def _reasons(vote: Vote, study: Study) -> tuple[int, ...]:
    raw = vote.reasons or []
    allowed = len(study.manifest.get("reasons") or []) if study.pairwise else 0
    if len(set(raw)) != len(raw) or not all(r < allowed for r in raw):
        why = t("api.why.reasons", high=allowed - 1) if allowed else t("api.why.no_reasons")
        raise ApiError(400, "api.bad_field", field="reasons", why=why)
    return tuple(sorted(raw))


def _stored_fields(vote: Vote) -> dict[str, Any]:
    """The vote's timings and signals as Response columns (unset ones left to their defaults)."""
    fields = vote.model_dump(exclude={"trial", "response", "reasons", "signals"}, exclude_none=True)
    if vote.signals is not None:
        # Only what the client sent (unknown keys already dropped): the export reads it back.
        fields["signals"] = vote.signals.model_dump(exclude_unset=True)
    return fields


def _reason_text(study: Study, reasons: tuple[int, ...]) -> str | None:
    texts = study.manifest.get("reasons") or []
    return ";".join(texts[i] for i in reasons) or None


def _vote_body(study: Study, trial: Trial, n: int) -> dict[str, Any]:
    # Derived from the trial alone, so a resubmit gets byte-identical output.
    last = trial.position >= n - 1
    return {"ok": True, "trial": trial.position, "next": None if last else trial.position + 1,
            "done": last, "redirect": flow.done_url(study) if last else None}


@bp.post("/s/<slug>/api/vote")
def api_vote(slug: str) -> HTTPResponse:
    db = get_db()
    study, rater, sess = _ready(db, slug, statuses=("active", "completed"))
    vote = _body(Vote)
    _on_scale(study, vote.response)
    reason = _reason_text(study, _reasons(vote, study))
    trial = db.scalar(select(Trial).where(Trial.session_id == sess.id, Trial.position == vote.trial)
                      .options(joinedload(Trial.response)))
    if trial is None:
        raise ApiError(404, "api.no_trial", trial=vote.trial)
    n, pending = flow.plan_state(db, sess)
    value = study.test_method.to_stored(vote.response, trial.a_left)
    stored = trial.response
    if stored is None and pending != trial.position:
        # The plan moved on after the trial was read: an identical vote sent at the same time may
        # have committed in between. Judge against what it stored before calling this out of order.
        stored = _stored_response(db, trial)
    if stored is not None:
        return _resubmit(study, trial, stored, n, value, reason)
    if pending != trial.position:
        raise ApiError(409, "api.out_of_order", current="-" if pending is None else pending)
    if not scheduling.touch(db, sess):
        # Expired since it was read (another worker's sweep): its trials went back to the pool.
        db.rollback()
        raise ApiError(410, "api.session_expired")
    db.add(Response(trial_id=trial.id, value=value, reason=reason, **_stored_fields(vote)))
    if trial.position >= n - 1:
        flow.complete(study, sess)
    try:
        if trial.kind == "gold":
            db.flush()  # may meet the identical vote committed meanwhile, as the commit may
            scheduling.check_gold(db, study, rater)
        db.commit()
    except IntegrityError:
        # The same vote arrived twice at once: the other request stored it; judge against that one.
        db.rollback()
        stored = _stored_response(db, trial)
        if stored is None:
            raise
        return _resubmit(study, trial, stored, n, value, reason)
    if trial.kind == "main" and scheduling.maybe_stop(db, study):
        db.commit()  # a transaction of its own: it locks the study row, which claims lock before sessions
    return jsonify(_vote_body(study, trial, n))


def _stored_response(db: DBSession, trial: Trial) -> Response | None:
    # A fresh statement sees what other transactions committed (read committed; SQLite outside a write).
    return db.scalar(select(Response).where(Response.trial_id == trial.id))


def _resubmit(study: Study, trial: Trial, stored: Response, n: int, value: int, reason: str | None) -> HTTPResponse:
    if stored.value != value or (stored.reason or None) != reason:
        raise ApiError(409, "api.conflict")
    return jsonify(_vote_body(study, trial, n))


# --------------------------------------------------------------------------- training


@bp.post("/s/<slug>/api/training")
def api_training(slug: str) -> HTTPResponse:
    """Check a practice answer; nothing is stored."""
    db = get_db()
    study, _, sess = _ready(db, slug)
    if flow.env(sess).get("training_done"):
        raise ApiError(409, "api.training_done")
    data = _body(TrainingAnswer)
    training = study.manifest.get("training") or []
    if data.item >= len(training):
        raise ApiError(404, "api.no_training", item=data.item)
    answer = _on_scale(study, data.response)
    spec = training[data.item]
    method = study.test_method
    value = method.to_stored(answer, True)
    expected = method.to_screen(spec["expected"], True)
    label = method.label_key(expected)
    return jsonify({
        "correct": abs(value - spec["expected"]) <= (spec.get("tolerance") or 0),
        "expected": expected,
        "expected_label": t(label) if label else str(expected),
        "feedback": spec.get("feedback"),
    })


@bp.post("/s/<slug>/api/training/done")
def api_training_done(slug: str) -> HTTPResponse:
    db = get_db()
    _, _, sess = _ready(db, slug)
    if g.get("json_body"):  # an empty body is fine too (older pages sent none)
        _body(TrainingDone)
    flow.set_env(sess, training_done=True)
    sess.last_seen_at = utcnow()
    db.commit()
    return jsonify({"ok": True})
