"""Who the rater is: panel IDs from the entry link, kept server-side in the signed cookie.

The link a panel opens carries the participant's ID (Prolific ``PROLIFIC_PID``,
MTurk ``workerId``); a study without a panel hands out an anonymous ID. The
identity lives in Flask's signed session cookie, keyed by study slug, and the
``Rater`` row is found by (study, panel, panel ID) — so the same panel ID on
another browser is the same rater and resumes where they left off.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from flask import request, session
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession

from study_app.models import Rater, Study

COOKIE_KEY = "raters"
PANEL_NAMES = {"prolific": "Prolific", "mturk": "Amazon Mechanical Turk"}
# (participant id, panel session id, other ids worth keeping) per panel, as the panels name them.
PANEL_PARAMS = {
    "prolific": ("PROLIFIC_PID", "SESSION_ID", ("STUDY_ID",)),
    "mturk": ("workerId", "assignmentId", ("hitId",)),
}
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class Refusal(Exception):
    """A friendly refusal page: catalog keys ``refuse.<key>.title/body``, an HTTP status."""

    def __init__(self, key: str, status: int, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.status = status
        self.values = values


@dataclass
class Identity:
    panel: str
    panel_id: str
    panel_session_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def from_request(study: Study) -> Identity:
    """The identity from the entry link's parameters, else from the cookie, else a new anonymous one.

    Raises
    ------
    Refusal
        Malformed IDs, an MTurk preview, or a panel study opened without the panel's parameters.
    """
    if study.panel in PANEL_PARAMS:
        pid_key, sess_key, extra_keys = PANEL_PARAMS[study.panel]
        if request.args.get("assignmentId") == MTURK_PREVIEW and study.panel == "mturk":
            raise Refusal("mturk_preview", 200)
        pid = request.args.get(pid_key)
        if pid is not None:
            values = [pid, request.args.get(sess_key), *(request.args.get(k) for k in extra_keys)]
            if any(v is not None and not _ID_RE.match(v) for v in values):
                raise Refusal("bad_id", 400)
            extra = {k: request.args[k] for k in extra_keys if request.args.get(k)}
            return Identity(study.panel, pid, request.args.get(sess_key), extra)
    known = remembered(study)
    if known is not None:
        return known
    if study.panel in PANEL_PARAMS:
        raise Refusal("need_panel", 400, panel=PANEL_NAMES[study.panel])
    return Identity("none", f"anon-{secrets.token_hex(8)}")


def remembered(study: Study) -> Identity | None:
    entry = session.get(COOKIE_KEY, {}).get(study.slug)
    if not isinstance(entry, dict) or entry.get("panel") != study.panel:
        return None
    return Identity(entry["panel"], entry["id"], entry.get("sid"), entry.get("extra") or {})


def remember(study: Study, ident: Identity) -> None:
    # Reassign the whole mapping: Flask only notices top-level changes to the session.
    raters = dict(session.get(COOKIE_KEY, {}))
    raters[study.slug] = {"panel": ident.panel, "id": ident.panel_id, "sid": ident.panel_session_id,
                          "extra": ident.extra}
    session[COOKIE_KEY] = raters


def find_rater(db: DBSession, study: Study, ident: Identity) -> Rater | None:
    return db.scalar(
        select(Rater).where(Rater.study_id == study.id, Rater.panel == ident.panel, Rater.panel_id == ident.panel_id)
    )


def ensure_rater(db: DBSession, study: Study, ident: Identity) -> Rater:
    """Find or create the rater; a concurrent first visit with the same ID ends on the same row."""
    found = find_rater(db, study, ident)
    if found is not None:
        return found
    try:
        with db.begin_nested():
            rater = Rater(study_id=study.id, panel=ident.panel, panel_id=ident.panel_id)
            db.add(rater)
    except IntegrityError:
        found = find_rater(db, study, ident)
        assert found is not None
        return found
    return rater
