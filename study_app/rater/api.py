"""The JSON API of the study page: environment gate, session plan, trials, votes, training.

Every refusal is ``{"error": message}`` with a meaningful status. Votes are
idempotent: the identical answer resubmitted returns the same 200 body; a
different answer for an answered trial is a 409.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from flask import jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response as HTTPResponse

from study_app.db import get_db
from study_app.i18n import t
from study_app.models import Rater, Response, Session, Study, Trial
from study_app.rater import api_error as error
from study_app.rater import bp, current, flow
from study_app.rater import load_study as _load_study
from study_app.rater.identity import Refusal
from study_app.rater.scales import SCREEN_SCALES, label_of, on_scale, to_screen, to_value

MAX_MS = 24 * 3600 * 1000
MAX_COUNT = 100_000
MAX_SIGNALS_CHARS = 4000


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
    if sess.status not in statuses:
        raise ApiError(403, "api.no_session")
    if study.status != "open":
        raise ApiError(403, f"api.{study.status}")
    return study, rater, sess


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "api.bad_json")
    return data


def _int(data: dict[str, Any], name: str, low: int, high: int, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "api.bad_field", field=name, why=t("api.why.required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, "api.bad_field", field=name, why=t("api.why.number"))
    if not low <= value <= high:
        raise ApiError(400, "api.bad_field", field=name, why=t("api.why.range", low=low, high=high))
    return round(value)


# --------------------------------------------------------------------------- environment gate


@bp.post("/s/<slug>/api/environment")
def api_environment(slug: str) -> HTTPResponse:
    db = get_db()
    study, rater, sess = _context(db, slug)
    if flow.step_endpoint(sess) != "rater.check":
        raise ApiError(409, "api.not_ready")
    data = _body()
    measured = {name: _int(data, name, 0, 100_000, required=True) for name in ("inner_w", "inner_h")}
    measured |= {name: _int(data, name, 0, 100_000) for name in ("screen_w", "screen_h")}
    dpr = data.get("dpr")
    good_dpr = isinstance(dpr, int | float) and not isinstance(dpr, bool) and math.isfinite(dpr) and 0 < dpr <= 16
    measured["dpr"] = float(dpr) if good_dpr else None
    measured["mobile"] = bool(data.get("mobile"))
    measured["user_agent"] = request.headers.get("User-Agent", "")[:300]
    need = flow.window_need(flow.display_of(db, study), measured["dpr"])
    failure = _gate_failure(study, measured, need)
    if failure is not None and failure[0] == "reason.window" and data.get("cannot") is not True:
        # Too small is something the rater can fix (resize, full screen): only their own
        # "I cannot" ends the session, never one early click.
        raise ApiError(422, "api.window_small", **failure[1])
    flow.set_env(sess, gate=measured)
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


@dataclass(frozen=True)
class Vote:
    position: int
    answer: int
    reasons: tuple[int, ...]
    numbers: dict[str, int | None]
    max_drift_ms: float | None
    signals: dict[str, Any] | None


def _parse_vote(data: dict[str, Any], study: Study) -> Vote:
    position = _int(data, "trial", 0, MAX_COUNT, required=True)
    answer = data.get("response")
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise ApiError(400, "api.bad_field", field="response", why=t("api.why.whole"))
    _on_scale(study, answer)
    numbers = {name: _int(data, name, 0, MAX_MS) for name in ("watch_ms", "answer_ms", "hidden_ms")}
    numbers |= {name: _int(data, name, 0, MAX_COUNT) for name in ("plays", "stalls", "window_w", "window_h")}
    drift = data.get("max_drift_ms")
    bad_drift = isinstance(drift, bool) or not isinstance(drift, int | float) or not 0 <= drift <= MAX_MS
    if drift is not None and bad_drift:
        raise ApiError(400, "api.bad_field", field="max_drift_ms", why=t("api.why.ms"))
    assert position is not None
    return Vote(position, answer, _reasons(data, study), numbers,
                None if drift is None else float(drift), _signals(data))


def _on_scale(study: Study, answer: object) -> int:
    """``answer`` when it is a whole number on the study's scale; refused otherwise."""
    if isinstance(answer, bool) or not isinstance(answer, int) or not on_scale(study.method, answer):
        s = SCREEN_SCALES[study.method]
        raise ApiError(400, "api.off_scale", value=answer, low=s.low, high=s.high)
    return answer


def _reasons(data: dict[str, Any], study: Study) -> tuple[int, ...]:
    raw = data.get("reasons") or []
    allowed = len(study.manifest.get("reasons") or []) if study.pairwise else 0
    if (not isinstance(raw, list) or len(set(map(repr, raw))) != len(raw)
            or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < allowed for r in raw)):
        why = t("api.why.reasons", high=allowed - 1) if allowed else t("api.why.no_reasons")
        raise ApiError(400, "api.bad_field", field="reasons", why=why)
    return tuple(sorted(raw))


def _signals(data: dict[str, Any]) -> dict[str, Any] | None:
    signals = data.get("signals")
    if signals is None:
        return None
    if not isinstance(signals, dict) or len(json.dumps(signals)) > MAX_SIGNALS_CHARS:
        raise ApiError(400, "api.bad_field", field="signals", why=t("api.why.signals", n=MAX_SIGNALS_CHARS))
    return signals


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
    study, _, sess = _ready(db, slug, statuses=("active", "completed"))
    vote = _parse_vote(_body(), study)
    trial = db.scalar(select(Trial).where(Trial.session_id == sess.id, Trial.position == vote.position)
                      .options(joinedload(Trial.response)))
    if trial is None:
        raise ApiError(404, "api.no_trial", trial=vote.position)
    n, pending = flow.plan_state(db, sess)
    value = to_value(study.method, vote.answer, trial.a_left)
    reason = _reason_text(study, vote.reasons)
    if trial.response is not None:
        return _resubmit(study, trial, n, value, reason)
    if pending != trial.position:
        raise ApiError(409, "api.out_of_order", current="-" if pending is None else pending)
    db.add(Response(trial_id=trial.id, value=value, reason=reason, max_drift_ms=vote.max_drift_ms,
                    signals=vote.signals, **{k: v for k, v in vote.numbers.items() if v is not None}))
    if trial.position >= n - 1:
        flow.complete(study, sess)
    try:
        db.commit()
    except IntegrityError:
        # The same vote arrived twice at once: the other request stored it; judge against that one.
        db.rollback()
        stored = db.scalar(select(Response).where(Response.trial_id == trial.id))
        if stored is None:
            raise
        db.refresh(trial)
        return _resubmit(study, trial, n, value, reason)
    return jsonify(_vote_body(study, trial, n))


def _resubmit(study: Study, trial: Trial, n: int, value: int, reason: str | None) -> HTTPResponse:
    stored = trial.response
    assert stored is not None
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
    data = _body()
    item = _int(data, "item", 0, MAX_COUNT, required=True)
    training = study.manifest.get("training") or []
    if item is None or item >= len(training):
        raise ApiError(404, "api.no_training", item=item)
    answer = _on_scale(study, data.get("response"))
    spec = training[item]
    value = to_value(study.method, answer, True)
    expected = to_screen(study.method, spec["expected"], True)
    return jsonify({
        "correct": abs(value - spec["expected"]) <= (spec.get("tolerance") or 0),
        "expected": expected,
        "expected_label": label_of(study.method, expected),
        "feedback": spec.get("feedback"),
    })


@bp.post("/s/<slug>/api/training/done")
def api_training_done(slug: str) -> HTTPResponse:
    db = get_db()
    _, _, sess = _ready(db, slug)
    flow.set_env(sess, training_done=True)
    db.commit()
    return jsonify({"ok": True})
