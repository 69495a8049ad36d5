"""A session's progress through the participant path, and what the browser may see of it.

Progress marks (consent, environment gate, training) live in ``Session.environment``;
answers live in ``Response`` rows. Everything built here for the browser uses
opaque media tokens and trial positions — never condition, content or file names.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from flask import current_app, url_for
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import joinedload

from study_app.i18n import t
from study_app.media import media_url, token_for
from study_app.models import Condition, Content, Rater, Response, Session, Stimulus, Study, Trial, utcnow


def env(sess: Session) -> dict[str, Any]:
    return dict(sess.environment or {})


def set_env(sess: Session, **values: Any) -> None:
    # A new dict object: SQLAlchemy does not track in-place changes to a JSON column.
    sess.environment = {**env(sess), **values}


def step_endpoint(sess: Session) -> str:
    """The page an active session continues on."""
    state = env(sess)
    if "consent_at" not in state:
        return "rater.welcome"
    if "gate" not in state:
        return "rater.check"
    return "rater.study"


def ready_for_trials(sess: Session) -> bool:
    return sess.status == "active" and step_endpoint(sess) == "rater.study"


def trial_count(db: DBSession, sess: Session) -> int:
    return db.scalar(select(func.count()).select_from(Trial).where(Trial.session_id == sess.id)) or 0


def plan_state(db: DBSession, sess: Session) -> tuple[int, int | None]:
    """(number of trials, position of the first unanswered one or None), in one query: the vote
    API needs both on every call."""
    n, first_open = db.execute(
        select(func.count(Trial.id), func.min(case((Response.id.is_(None), Trial.position))))
        .select_from(Trial)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Trial.session_id == sess.id)
    ).one()
    return n or 0, first_open


def answered_count(db: DBSession, sess: Session) -> int:
    """Answered trials of the session."""
    return db.scalar(select(func.count(Response.id)).select_from(Trial).join(Response, Response.trial_id == Trial.id)
                     .where(Trial.session_id == sess.id)) or 0


def next_trial(db: DBSession, sess: Session) -> Trial | None:
    """The first unanswered trial (in position order) with its clips loaded, or None when all are answered."""
    return db.scalar(
        select(Trial)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Trial.session_id == sess.id, Response.id.is_(None))
        .order_by(Trial.position)
        .limit(1)
        .options(joinedload(Trial.stimulus_a), joinedload(Trial.stimulus_b), joinedload(Trial.reference))
    )


def complete(study: Study, sess: Session) -> None:
    sess.status = "completed"
    sess.completed_at = utcnow()
    sess.completion_code = study.manifest["panel"].get("completion_code")


def screen_out(sess: Session, rater: Rater, key: str, values: dict[str, Any]) -> None:
    sess.status = "screened_out"
    sess.completed_at = utcnow()
    rater.screen_out_reason = t(key, lang="en", **values)  # stored in English for organizers
    set_env(sess, screen_out={"key": key, "values": values})


# --------------------------------------------------------------------------- what the browser sees


#: Gap between two side-by-side players, in CSS pixels (the same number is in rater.css).
GAP_PX = 16


@dataclass(frozen=True)
class Display:
    """What the screen check and the study page need to lay a trial out.

    ``clip_w``/``clip_h`` are the largest clip's size in video pixels; ``min_w``/``min_h`` the
    manifest's ``environment`` minimum in CSS pixels (None when not given).
    """

    display: str
    layout: str
    clip_w: int
    clip_h: int
    min_w: int | None
    min_h: int | None

    def as_config(self) -> dict[str, Any]:
        return {**asdict(self), "gap": GAP_PX}


def display_of(db: DBSession, study: Study) -> Display:
    environment = study.manifest.get("environment") or {}
    w, h = db.execute(
        select(func.max(Stimulus.width), func.max(Stimulus.height)).where(Stimulus.study_id == study.id)
    ).one()
    return Display(study.manifest.get("display") or "auto", layout_of(study), int(w or 0), int(h or 0),
                   environment.get("min_width"), environment.get("min_height"))


def window_need(d: Display, dpr: float | None) -> tuple[int, int]:
    """The smallest inner window (CSS pixels) that shows ``d``'s clips as the study asks.

    Native size means one video pixel per screen pixel, so a clip takes ``w / dpr`` CSS
    pixels. Side-by-side at native size needs two clips and the gap; ``auto`` and ``toggle``
    need one clip (``auto`` shows the toggle view when two do not fit); ``scaled`` needs the
    manifest's minimum, else one clip. The manifest's minimum is a floor for every display.
    The same formula runs in the browser (static/js/display.js) so the check updates live.
    """
    if d.display == "scaled":
        return d.min_w or d.clip_w, d.min_h or d.clip_h
    ratio = dpr if dpr and dpr > 0 else 1.0
    two = d.layout == "pair" and d.display == "side-by-side"
    w = _css(d.clip_w * (2 if two else 1), ratio) + (GAP_PX if two else 0)
    return max(w, d.min_w or 0), max(_css(d.clip_h, ratio), d.min_h or 0)


def _css(pixels: int, dpr: float) -> int:
    # 1e-6 keeps 1280 / 1.25 = 1024 from becoming 1025 through float error.
    return math.ceil(pixels / dpr - 1e-6)


def _clip(study: Study, stim: Stimulus, role: str) -> dict[str, Any]:
    return {"media": token_for(study.id, stim.id), "w": stim.width, "h": stim.height, "role": role}


def clips_of(study: Study, a: Stimulus, b: Stimulus | None, reference: Stimulus | None,
             a_left: bool) -> list[dict[str, Any]]:
    """The clips of one trial in display order, left/right already applied."""
    if b is not None:
        left, right = (a, b) if a_left else (b, a)
        return [_clip(study, left, "left"), _clip(study, right, "right")]
    if reference is not None:
        return [_clip(study, reference, "reference"), _clip(study, a, "processed")]
    return [_clip(study, a, "clip")]


def layout_of(study: Study) -> str:
    if study.pairwise:
        return "pair"
    # A shown reference plays before the processed clip (DCR).
    return "sequence" if study.test_method.reference == "shown" else "single"


def trial_payload(db: DBSession, study: Study, sess: Session, trial: Trial) -> dict[str, Any]:
    n = trial_count(db, sess)
    return {
        "trial": trial.position,
        "k": trial.position + 1,
        "n": n,
        "layout": layout_of(study),
        "clips": clips_of(study, trial.stimulus_a, trial.stimulus_b, trial.reference, trial.a_left),
    }


def training_items(db: DBSession, study: Study) -> list[dict[str, Any]]:
    """The manifest's training items resolved to stimuli (condition A always on the left:
    feedback texts may say "the left clip …")."""
    items = []
    reference_key = _reference_key(study) if study.test_method.reference == "shown" else None
    for item in study.manifest.get("training") or []:
        a = _stimulus(db, study, item["content"], item["cond_a"])
        b = _stimulus(db, study, item["content"], item["cond_b"]) if item.get("cond_b") else None
        ref = _stimulus(db, study, item["content"], reference_key) if reference_key else None
        items.append({"spec": item, "clips": clips_of(study, a, b, ref, True)})
    return items


def _reference_key(study: Study) -> str | None:
    refs = [c["id"] for c in study.manifest.get("conditions", []) if c.get("role") == "reference"]
    return refs[0] if refs else None


def _stimulus(db: DBSession, study: Study, content: str, condition: str) -> Stimulus:
    stim = db.scalar(
        select(Stimulus)
        .join(Content, Stimulus.content_id == Content.id)
        .join(Condition, Stimulus.condition_id == Condition.id)
        .where(Stimulus.study_id == study.id, Content.key == content, Condition.key == condition)
    )
    assert stim is not None, "validated manifests only name existing stimuli"
    return stim


def media_list(db: DBSession, study: Study, sess: Session, with_training: bool) -> list[dict[str, Any]]:
    """Every clip the rest of this session needs, once each, in an order that reveals nothing."""
    pending = (
        select(Trial.stimulus_a_id, Trial.stimulus_b_id, Trial.reference_id)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Trial.session_id == sess.id, Response.id.is_(None))
        .subquery()
    )
    shown = or_(Stimulus.id == pending.c.stimulus_a_id, Stimulus.id == pending.c.stimulus_b_id,
                Stimulus.id == pending.c.reference_id)
    sizes = db.execute(select(Stimulus.id, Stimulus.size_bytes).join(pending, shown).distinct()).all()
    out = {token_for(study.id, stim_id): size for stim_id, size in sizes}
    if with_training:
        for item in training_items(db, study):
            for clip in item["clips"]:
                out.setdefault(clip["media"], None)
    tokens = sorted(out)
    random.shuffle(tokens)  # neither plan order nor stimulus id order
    return [{"media": tok, "url": media_url(tok), "bytes": out[tok]} for tok in tokens]


# --------------------------------------------------------------------------- completion


def completion(study: Study, sess: Session) -> dict[str, Any]:
    """Code and where to send the rater after the last trial."""
    panel = study.manifest.get("panel") or {}
    return _exit(study, sess.completion_code or panel.get("completion_code"), panel.get("completion_url"))


def screen_out_exit(study: Study) -> dict[str, Any]:
    """Code and where to send a rater the environment gate turned away."""
    panel = study.manifest.get("panel") or {}
    return _exit(study, panel.get("screen_out_code"), panel.get("screen_out_url"))


def _exit(study: Study, code: str | None, url: str | None) -> dict[str, Any]:
    # The manifest's URL wins ({code} filled in); Prolific studies default to Prolific's page.
    if url:
        url = url.replace("{code}", code or "")
    elif study.panel == "prolific" and code:
        url = current_app.config["PROLIFIC_COMPLETE_URL"].format(code=code)
    return {"code": code, "url": url}


def done_url(study: Study) -> str:
    return url_for("rater.done", slug=study.slug)
