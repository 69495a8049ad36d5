"""Writing a validated study into the database — all of it in one transaction."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session as DBSession

from analysis import video
from analysis.methods import METHODS
from study_app.design import DesignSpec, GoldItem, design_items, item_key, references
from study_app.manifest import ManifestError, StimulusEntry, ValidatedManifest
from study_app.media import copies_dir
from study_app.models import Condition, Content, Response, Session, Stimulus, Study, StudyItem, Trial
from study_app.plan import Plan, PlannedTrial, make_plan


def create_study(db: DBSession, vm: ValidatedManifest, organizer_id: int | None = None,
                 media_dir: Path | None = None, plan_sessions: bool = False) -> Study:
    """Write the study, its stimuli and its items with their vote targets.

    Sessions are not planned ahead: each is built when a rater starts it, from what the
    study needs most then (:func:`study_app.scheduling.claim_session`). ``plan_sessions``
    writes the seed's whole plan as ``planned`` sessions instead, for studies whose sessions
    are filled in directly (the demo's simulated study); raters are never given those.

    Every local stimulus file is served from a clean copy (:func:`analysis.video.clean_copy`)
    under an opaque random name in ``<media_dir>/<study id>/``; the stimulus rows point
    at the copies. URL stimuli stay as they are (they are proxied).

    The caller owns the transaction: nothing is visible until it commits, and a
    failure anywhere leaves the database as it was. The copies are removed again
    when the transaction rolls back.

    Parameters
    ----------
    db : Session
        The caller's session, inside its transaction.
    vm : ValidatedManifest
        A manifest that passed validation (stimuli probed).
    organizer_id : int, optional
        Owner of the study.
    media_dir : path, optional
        Root folder of the copies; default :func:`study_app.media.copies_dir` of the current app.
    plan_sessions : bool
        Also write the plan's sessions (status ``planned``).

    Raises
    ------
    ManifestError
        If a study with the same slug exists already, or stimulus files cannot be
        remuxed (every such file is listed; no copy is left behind).
    """
    if db.scalar(select(Study.id).where(Study.slug == vm.slug)) is not None:
        raise ManifestError([f"{vm.source.name}: slug: a study '{vm.slug}' already exists"])
    plan = make_plan(vm.spec)  # validates the design (and its gold supply) whether or not it is written
    settings = vm.settings
    # A study without a panel-issued code still hands raters one, unguessable per study.
    settings["panel"].setdefault("completion_code", secrets.token_hex(4).upper())
    study = Study(
        slug=vm.slug, name=settings["name"], method=settings["method"], panel=settings["panel"]["name"],
        seed=settings["seed"], max_sessions_per_rater=settings["max_sessions_per_rater"],
        manifest=settings, organizer_id=organizer_id,
    )
    db.add(study)
    db.flush()
    folder = (media_dir or copies_dir()) / str(study.id)
    served = _clean_copies(vm, folder)
    _discard_on_rollback(db, folder)
    stimulus_ids = _write_stimuli(db, study, vm, served)
    item_ids = _write_items(db, study, vm, stimulus_ids)
    if plan_sessions:
        _write_plan(db, study, plan, stimulus_ids, item_ids)
    return study


def _write_items(db: DBSession, study: Study, vm: ValidatedManifest,
                 stimulus_ids: dict[tuple[str, str], int]) -> dict[tuple[str, str, str | None], int]:
    """One row per design item, target ``votes_per_item`` (none under active selection); item key → id."""
    spec = vm.spec
    items = design_items(spec)
    shown = references(spec)[0] if METHODS[spec.method].reference == "shown" else None
    target = None if vm.settings.get("selection") == "active" else spec.votes_per_item
    rows = [{
        "study_id": study.id, "position": i, "stimulus_a_id": stimulus_ids[(content, a)],
        "stimulus_b_id": stimulus_ids[(content, b)] if b is not None else None,
        "reference_id": stimulus_ids[(content, shown)] if shown is not None else None, "target": target,
    } for i, (content, a, b) in enumerate(items)]
    if not rows:
        return {}
    ids = db.scalars(insert(StudyItem).returning(StudyItem.id, sort_by_parameter_order=True), rows).all()
    return {item_key(*it): i for it, i in zip(items, ids, strict=True)}


def _clean_copies(vm: ValidatedManifest, folder: Path) -> dict[tuple[str, str], tuple[str, int | None]]:
    """(content, condition) → (served path, size) of every stimulus; local files are copied clean."""
    served: dict[tuple[str, str], tuple[str, int | None]] = {}
    problems: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for s in vm.stimuli:
            key = (s.content, s.condition)
            if _is_url(s.path):
                served[key] = (s.path, s.media.size_bytes if s.media else None)
                continue
            copy = folder / f"{secrets.token_hex(16)}{video.copy_suffix(s.path)}"
            try:
                served[key] = (str(copy), video.clean_copy(s.path, copy))
            except (ValueError, OSError) as exc:
                problems.append(_copy_problem(vm, s, exc))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if problems:
        shutil.rmtree(folder, ignore_errors=True)
        raise ManifestError(problems)
    return served


def _copy_problem(vm: ValidatedManifest, s: StimulusEntry, exc: Exception) -> str:
    # Worded like the manifest check's own problems (study_app.manifest).
    if isinstance(exc, video.VideoError):
        why = exc.problem  # the line names the file itself
    else:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{vm.source.name}: stimuli[{s.content}/{s.condition}]: '{s.path}': {why}"


def _is_url(path: str) -> bool:
    return urlparse(path).scheme in ("http", "https")


def _discard_on_rollback(db: DBSession, folder: Path) -> None:
    """Remove ``folder`` if the caller's transaction rolls back, keep it if it commits.

    The copies are written before the commit (the rows must point at them); without
    this, a failure after ``create_study`` returned would leave orphan files.
    """
    decided = False

    def keep(_session: DBSession) -> None:
        nonlocal decided
        decided = True

    def discard(_session: DBSession) -> None:
        nonlocal decided
        if not decided:
            decided = True
            shutil.rmtree(folder, ignore_errors=True)

    event.listen(db, "after_commit", keep, once=True)
    event.listen(db, "after_rollback", discard, once=True)


def _write_stimuli(db: DBSession, study: Study, vm: ValidatedManifest,
                   served: dict[tuple[str, str], tuple[str, int | None]]) -> dict[tuple[str, str], int]:
    conditions = {
        c: Condition(study_id=study.id, key=c, label=vm.labels[c], role=vm.spec.roles[c], position=i)
        for i, c in enumerate(vm.spec.conditions)
    }
    contents = {c: Content(study_id=study.id, key=c, position=i) for i, c in enumerate(vm.spec.contents)}
    db.add_all([*conditions.values(), *contents.values()])
    db.flush()
    rows = []
    for s in vm.stimuli:
        m = s.media
        assert m is not None, "stimuli are probed before a study is written"
        path, size = served[(s.content, s.condition)]
        rows.append({
            "study_id": study.id, "content_id": contents[s.content].id, "condition_id": conditions[s.condition].id,
            "path": path, "width": m.width, "height": m.height, "fps": m.fps, "duration_s": m.duration_s,
            "n_frames": m.n_frames, "codec": m.codec, "size_bytes": size,
        })
    ids = db.scalars(insert(Stimulus).returning(Stimulus.id, sort_by_parameter_order=True), rows).all()
    return {(s.content, s.condition): i for s, i in zip(vm.stimuli, ids, strict=True)}


def stored_spec(study: Study) -> DesignSpec:
    """The design of a stored study, rebuilt from its rows and settings as the manifest check built it.

    Parameters
    ----------
    study : Study
        A study written by :func:`create_study` (its settings hold the design fields).

    Returns
    -------
    DesignSpec
    """
    settings, pairwise = study.manifest, METHODS[study.method].pairwise
    gold = tuple(GoldItem(g["content"], g["cond_a"] if pairwise else g["condition"], g.get("cond_b"),
                          g["expected"], g["tolerance"]) for g in settings.get("gold") or ())
    return DesignSpec(
        method=study.method, conditions=tuple(c.key for c in study.conditions),
        roles={c.key: c.role for c in study.conditions}, contents=tuple(c.key for c in study.contents),
        pairwise=pairwise, design=settings["design"], k=settings["k"], votes_per_item=settings["votes_per_item"],
        trials_per_session=settings["trials_per_session"], repeats_per_session=settings["repeats_per_session"],
        gold=gold, gold_per_session=settings["gold_per_session"], seed=study.seed,
    )


def write_planned_sessions(db: DBSession, study: Study) -> int:
    """Write the seed's whole plan of an existing study as ``planned`` sessions; returns how many.

    For filling a study with simulated votes (:func:`study_app.demo.builder.fill_with_simulated_votes`):
    raters are never given planned sessions. ``create_study(..., plan_sessions=True)`` does the same
    when the study is created.
    """
    stimulus_ids = {(st.content.key, st.condition.key): st.id
                    for st in db.scalars(select(Stimulus).where(Stimulus.study_id == study.id))}
    keys = {i: k for k, i in stimulus_ids.items()}
    item_ids = {item_key(keys[it.stimulus_a_id][0], keys[it.stimulus_a_id][1],
                         keys[it.stimulus_b_id][1] if it.stimulus_b_id is not None else None): it.id
                for it in study.items}
    plan = make_plan(stored_spec(study))
    _write_plan(db, study, plan, stimulus_ids, item_ids)
    db.expire(study, ["sessions"])
    return len(plan.sessions)


def _write_plan(db: DBSession, study: Study, plan: Plan, stimulus_ids: dict[tuple[str, str], int],
                item_ids: dict[tuple[str, str, str | None], int]) -> None:
    session_rows = [{"study_id": study.id, "index": s.index, "status": "planned"} for s in plan.sessions]
    if not session_rows:
        return
    session_ids = db.scalars(insert(Session).returning(Session.id, sort_by_parameter_order=True), session_rows).all()
    originals: list[dict[str, Any]] = []
    repeats: list[tuple[int, int, dict[str, Any]]] = []  # (session id, original position, row)
    for sid, planned in zip(session_ids, plan.sessions, strict=True):
        for t in planned.trials:
            row = _trial_row(sid, t, stimulus_ids)
            row["item_id"] = item_ids.get(item_key(t.content, t.cond_a, t.cond_b))
            if t.kind == "repeat":
                assert t.repeat_of is not None
                repeats.append((sid, t.repeat_of, row))
            else:
                originals.append(row)
    ids = db.scalars(insert(Trial).returning(Trial.id, sort_by_parameter_order=True), originals).all()
    by_position = {(r["session_id"], r["position"]): i for r, i in zip(originals, ids, strict=True)}
    if repeats:
        # Repeats point at their original's id, which only exists after the first insert.
        rows = [{**row, "repeat_of_id": by_position[(sid, pos)]} for sid, pos, row in repeats]
        db.execute(insert(Trial), rows)


def _trial_row(session_id: int, t: PlannedTrial, stimulus_ids: dict[tuple[str, str], int]) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "position": t.position,
        "kind": t.kind,
        "stimulus_a_id": stimulus_ids[(t.content, t.cond_a)],
        "stimulus_b_id": stimulus_ids[(t.content, t.cond_b)] if t.cond_b is not None else None,
        "reference_id": stimulus_ids[(t.content, t.reference)] if t.reference is not None else None,
        "a_left": t.a_left,
        "repeat_of_id": None,
        "gold_expected": t.gold_expected,
        "gold_tolerance": t.gold_tolerance,
    }


def get_study(db: DBSession, slug: str) -> Study | None:
    if not slug.isprintable():  # no slug has control characters, and PostgreSQL refuses a NUL outright
        return None
    return db.scalar(select(Study).where(Study.slug == slug))


def study_counts(db: DBSession, studies: Sequence[Study]) -> dict[int, dict[str, int]]:
    """Per study id: sessions per status and in all, trials and votes, for listings.

    Two grouped queries for the whole list, however many studies it has.
    """
    ids = [s.id for s in studies]
    counts: dict[int, dict[str, int]] = {i: {"sessions": 0, "trials": 0, "votes": 0} for i in ids}
    if not ids:
        return counts
    by_status = db.execute(
        select(Session.study_id, Session.status, func.count())
        .where(Session.study_id.in_(ids))
        .group_by(Session.study_id, Session.status)
    )
    for study_id, status, n in by_status:
        counts[study_id][status] = n
        counts[study_id]["sessions"] += n
    # One response per trial (uq_response_trial), so counting responses over the outer join counts votes.
    planned = db.execute(
        select(Session.study_id, func.count(Trial.id), func.count(Response.id))
        .join(Trial, Trial.session_id == Session.id)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Session.study_id.in_(ids))
        .group_by(Session.study_id)
    )
    for study_id, trials, votes in planned:
        counts[study_id].update(trials=trials, votes=votes)
    return counts
