"""Which trials a rater gets: a session built on demand from what the study needs most, safe under concurrency.

Nothing is planned ahead. A study holds its items (:class:`~study_app.models.StudyItem`: a
content and condition pair, or a stimulus) with the number of valid votes each needs. When a
rater starts a session, :func:`claim_session` builds it:

1. idle sessions of the study expire first (:func:`expire_idle`): a session with no sign of
   life for ``session_timeout_minutes`` gets status ``expired``; its answered trials are kept,
   its unanswered ones stop counting, so their items are short again;
2. every item's *count* is its valid votes plus its trials in flight (main trials not yet
   answered, in active sessions). A vote is valid when its rater is not screened out (at the
   environment gate or by the live gold check, :func:`check_gold`) or rejected by an organizer,
   or was accepted by one (:func:`valid_rater`): votes of screened-out raters stop counting,
   so their items are collected again;
3. balanced selection (the default) takes the items still short of their target, never one the
   rater already judged or holds, fewest counted first (ties at random), at most
   ``trials_per_session``. Each gets the side (A left or B left) its item has had less often;
   active selection (``design.selection: active``) asks :func:`analysis.active.next_pairs` for
   the condition pairs to compare, in-flight trials passed as pending, and takes for each pair
   the content with the fewest counted trials on it that the rater has not judged;
4. gold trials (``gold_per_session``, the least used first, never an item that is also one of the
   session's main trials) and consistency repeats are added as the plan adds them
   (:func:`study_app.plan.arrange_session`).

Because only items short of their target are assigned, and an answered trial of a valid rater is
never taken back, every item ends with exactly its target of valid votes, each from a different
rater (a later organizer decision that re-admits a rejected rater can add votes beyond it).

Several gunicorn workers claim at the same time, so building a session is serialised per study:

* the claim first raises the rater's ``sessions_claimed`` with one conditional UPDATE
  (``… WHERE sessions_claimed < cap``): the atomic cap, and the lock that makes a second claim of
  the same rater (two tabs, a retried consent) wait and then resume the first one's session
  (:class:`SessionHeld`); a partial unique index keeps one ``active`` session per rater;
* then the study row is locked: ``SELECT … FOR UPDATE`` on PostgreSQL (each later statement of the
  claim reads what the claims before it committed); on SQLite the rater UPDATE has already taken
  the database's write lock, which no other writer gets before this claim commits.

A vote lands only through ``UPDATE session SET last_seen_at = now WHERE id = … AND status =
'active'`` (:func:`touch`): a session that expired meanwhile refuses it (the rater is told it
expired), and on PostgreSQL the expiry's ``UPDATE … WHERE last_seen_at < cutoff`` re-checks a row
a vote has just touched, so a session is never expired under a vote.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import aliased

from study_app.models import Condition, Content, Rater, Response, Session, Stimulus, Study, StudyItem, Trial, utcnow
from study_app.plan import arrange_session

#: Default of the manifest's ``session_timeout_minutes``.
DEFAULT_TIMEOUT_MINUTES = 60.0
#: Default minimum share of correct gold answers (that of :class:`analysis.screening.ScreeningRules`).
MIN_GOLD_ACCURACY = 0.8
#: Active selection re-checks its stopping rule after every this many votes (a Bradley–Terry fit each time).
STOP_CHECK_EVERY = 10


def latest_session(db: DBSession, rater: Rater) -> Session | None:
    """The rater's most recently claimed session, whatever its status."""
    return db.scalar(
        select(Session).where(Session.rater_id == rater.id).order_by(Session.started_at.desc(), Session.id.desc())
    )


def sessions_taken(db: DBSession, rater: Rater) -> int:
    """How many sessions this rater has claimed (the cap counts every one, finished, expired or not)."""
    return db.scalar(select(Rater.sessions_claimed).where(Rater.id == rater.id)) or 0


def active_session(db: DBSession, rater: Rater) -> Session | None:
    """The rater's active session (at most one: the schema says so), read afresh from the database."""
    return db.scalar(
        select(Session).where(Session.rater_id == rater.id, Session.status == "active")
        .execution_options(populate_existing=True)
    )


class NoNewSession(Exception):
    """Why :func:`claim_session` gave the rater no new session; nothing was written."""


class CapReached(NoNewSession):
    """The rater has claimed ``max_sessions_per_rater`` sessions already."""


class SessionHeld(NoNewSession):
    """The rater holds an active session: usually one that a concurrent claim of theirs has just committed."""

    def __init__(self, session: Session) -> None:
        super().__init__(session.id)
        self.session = session


# --------------------------------------------------------------------------- validity and expiry


def valid_rater() -> Any:
    """SQL condition on :class:`Rater`: their votes count (accepted by an organizer, or neither rejected
    nor screened out)."""
    return or_(Rater.decision == "accept", and_(Rater.decision.is_(None), Rater.screen_out_reason.is_(None)))


def is_out(rater: Rater) -> bool:
    """:func:`valid_rater` in Python: the rater's votes do not count and they get no new session."""
    return rater.decision == "reject" or (rater.decision is None and rater.screen_out_reason is not None)


def timeout(study: Study) -> timedelta:
    """How long a session may go without a sign of life (``session_timeout_minutes``)."""
    return timedelta(minutes=float((study.manifest or {}).get("session_timeout_minutes") or DEFAULT_TIMEOUT_MINUTES))


def _idle(study: Study, now: datetime) -> Any:
    return func.coalesce(Session.last_seen_at, Session.started_at) < now - timeout(study)


def expire_idle(db: DBSession, study: Study, now: datetime | None = None) -> int:
    """Expire the study's active sessions idle for longer than its timeout; how many expired.

    Reads first and writes only when something is due, so a rater's page view does not take
    SQLite's write lock for nothing. The caller commits.
    """
    now = now or utcnow()
    due_q = select(Session.id).where(Session.study_id == study.id, Session.status == "active", _idle(study, now))
    if db.get_bind().dialect.name == "postgresql":
        # Lock the rows first, in id order, skipping those another sweep or a vote (touch) holds: several sweeps
        # updating overlapping sets of rows in whatever order the scan meets them deadlock each other.
        due_q = due_q.order_by(Session.id).with_for_update(skip_locked=True)
    due = db.scalars(due_q).all()
    if not due:
        return 0
    result = db.execute(
        update(Session)
        .where(Session.id.in_(due), Session.status == "active", _idle(study, now))
        .values(status="expired", completed_at=now)
        .execution_options(synchronize_session=False)
    )
    for sess in db.identity_map.values():
        if isinstance(sess, Session) and sess.id in due:
            db.expire(sess, ["status", "completed_at"])
    return result.rowcount


def touch(db: DBSession, sess: Session) -> bool:
    """Mark a sign of life of an active session; False when it is no longer active (expired meanwhile)."""
    result = db.execute(
        update(Session).where(Session.id == sess.id, Session.status == "active")
        .values(last_seen_at=utcnow()).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def check_gold(db: DBSession, study: Study, rater: Rater) -> bool:
    """Screen ``rater`` out when their share of correct gold answers falls below the threshold; True if so.

    Correct as :mod:`analysis.screening` counts it: ``|answer − expected| ≤ tolerance``
    (stored values, the trial's own tolerance). Once out, the rater stays out (an organizer
    may accept them on the raters page): their votes stop counting and their items are
    collected again, so a later recovery must not add them back. The caller commits.
    """
    if rater.screen_out_reason is not None or rater.decision is not None:
        return False
    tolerance = func.coalesce(Trial.gold_tolerance, 1)
    n, correct = db.execute(
        select(func.count(Response.id),
               func.count(case((func.abs(Response.value - Trial.gold_expected) <= tolerance, 1))))
        .select_from(Trial).join(Response, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id)
        .where(Session.rater_id == rater.id, Trial.kind == "gold")
    ).one()
    threshold = float((study.manifest or {}).get("min_gold_accuracy") or MIN_GOLD_ACCURACY)
    if not n or correct / n >= threshold:
        return False
    rater.screen_out_reason = f"failed the gold questions: {correct} of {n} correct (below {threshold:.0%})"
    return True


# --------------------------------------------------------------------------- what the study needs


@dataclass
class ItemState:
    """One item as a claim sees it."""

    id: int
    stimulus_a: int
    stimulus_b: int | None
    reference: int | None
    target: int | None
    cond_a: int  # condition position
    cond_b: int | None
    content: int
    votes: int = 0  # valid votes
    pending: int = 0  # trials in flight
    left: int = 0  # of those, shown with A on the left

    @property
    def counted(self) -> int:
        return self.votes + self.pending

    @property
    def short(self) -> int:
        return 0 if self.target is None else max(0, self.target - self.counted)


def item_states(db: DBSession, study: Study) -> dict[int, ItemState]:
    """Every item of the study with its valid votes, trials in flight and sides (two queries)."""
    sa, sb = aliased(Stimulus), aliased(Stimulus)
    ca, cb = aliased(Condition), aliased(Condition)
    states: dict[int, ItemState] = {}
    for row in db.execute(
        select(StudyItem.id, StudyItem.stimulus_a_id, StudyItem.stimulus_b_id, StudyItem.reference_id,
               StudyItem.target, ca.position, cb.position, sa.content_id)
        .join(sa, StudyItem.stimulus_a_id == sa.id).join(ca, sa.condition_id == ca.id)
        .outerjoin(sb, StudyItem.stimulus_b_id == sb.id).outerjoin(cb, sb.condition_id == cb.id)
        .where(StudyItem.study_id == study.id).order_by(StudyItem.position)
    ):
        states[row[0]] = ItemState(*row)
    counts = db.execute(
        select(Trial.item_id, func.count(Response.id), func.count(case((Response.id.is_(None), 1))),
               func.count(case((Trial.a_left, 1))))
        .join(Session, Trial.session_id == Session.id)
        .join(Rater, Session.rater_id == Rater.id)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Session.study_id == study.id, Trial.kind == "main", Trial.item_id.is_not(None), valid_rater(),
               or_(Response.id.is_not(None), Session.status == "active"))
        .group_by(Trial.item_id)
    )
    for item_id, votes, pending, left in counts:
        if item_id in states:
            states[item_id].votes, states[item_id].pending, states[item_id].left = votes, pending, left
    return states


def held_items(db: DBSession, rater: Rater) -> set[int]:
    """Items the rater judged (answered main trials) or holds (unanswered ones in an active session)."""
    return set(db.scalars(
        select(Trial.item_id).distinct()
        .join(Session, Trial.session_id == Session.id)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .where(Session.rater_id == rater.id, Trial.kind == "main", Trial.item_id.is_not(None),
               or_(Response.id.is_not(None), Session.status == "active"))
    ))


def active_selection(study: Study) -> bool:
    return (study.manifest or {}).get("selection") == "active"


def work_left(db: DBSession, study: Study, rater: Rater | None = None) -> int:
    """Main trials the study could still hand out (to ``rater``, if given: items they have not judged).

    Balanced selection: the votes items are short of their target. Active selection: what is left
    of the vote budget (0 once the study has stopped), when the rater has any item left to judge.
    """
    states = item_states(db, study)
    held = held_items(db, rater) if rater is not None else set()
    if active_selection(study):
        budget = int(study.manifest.get("vote_budget") or 0)
        left = max(0, budget - sum(s.counted for s in states.values()))
        return left if any(i not in held for i in states) else 0
    return sum(s.short for i, s in states.items() if i not in held)


# --------------------------------------------------------------------------- claiming


def claim_session(db: DBSession, study: Study, rater: Rater) -> Session | None:
    """Build and give ``rater`` a new session of ``study``; None when the study has nothing for them.

    The caller commits; until then the study row (PostgreSQL) or the database (SQLite) stays
    locked for other claims, and the rater's row for other claims of the same rater.

    Raises
    ------
    CapReached
        The rater has taken ``max_sessions_per_rater`` sessions.
    SessionHeld
        The rater already holds an active session (a concurrent claim of theirs won): resume that one.
    """
    if not _count_claim(db, study, rater):
        _refuse(db, rater)
    if (held := active_session(db, rater)) is not None:
        _uncount_claim(db, rater)
        raise SessionHeld(held)
    _lock_study(db, study)
    now = utcnow()
    expire_idle(db, study, now)
    built = _build(db, study, rater, now)
    if built is None:
        _uncount_claim(db, rater)  # nothing for this rater: they took nothing
    return built


def _lock_study(db: DBSession, study: Study) -> None:
    if db.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE: it queues the claims behind each other but not behind the FOR KEY SHARE that every
        # insert referencing the study takes (a new rater's row, in this same transaction): FOR UPDATE would
        # deadlock two claims of new raters, each holding the key share the other's FOR UPDATE waits for.
        db.execute(select(Study.id).where(Study.id == study.id).with_for_update(key_share=True))
    # SQLite: _count_claim's UPDATE holds the database's write lock until this transaction ends.


def _count_claim(db: DBSession, study: Study, rater: Rater) -> bool:
    """Count one more session for ``rater`` if the cap allows; False when it does not.

    A conditional UPDATE rather than a count then an insert: it is atomic, and it takes the lock that
    queues concurrent claims of the same rater (PostgreSQL re-checks the condition once the other
    claim has committed; on SQLite it is this transaction's first write, so it waits for the write lock).
    """
    result = db.execute(
        update(Rater)
        .where(Rater.id == rater.id, Rater.sessions_claimed < study.max_sessions_per_rater)
        .values(sessions_claimed=Rater.sessions_claimed + 1)
        .execution_options(synchronize_session=False)
    )
    db.expire(rater, ["sessions_claimed"])
    return result.rowcount == 1


def _uncount_claim(db: DBSession, rater: Rater) -> None:
    # This transaction still holds the rater's lock, so nobody has read the count in between.
    db.execute(
        update(Rater).where(Rater.id == rater.id).values(sessions_claimed=Rater.sessions_claimed - 1)
        .execution_options(synchronize_session=False)
    )
    db.expire(rater, ["sessions_claimed"])


def _refuse(db: DBSession, rater: Rater) -> NoReturn:
    """The cap is reached: say whether a session of this rater is still running (then resume it)."""
    held = active_session(db, rater)
    if held is not None:
        raise SessionHeld(held)
    raise CapReached


@dataclass(frozen=True)
class _Gold:
    """A gold trial ready to write."""

    stimulus_a: int
    stimulus_b: int | None
    reference: int | None
    expected: int
    tolerance: int | None
    item: int | None
    a_left: bool


def _build(db: DBSession, study: Study, rater: Rater, now: datetime) -> Session | None:
    manifest = study.manifest
    states = item_states(db, study)
    held = held_items(db, rater)
    index = db.scalar(select(func.coalesce(func.max(Session.index) + 1, 0)).where(Session.study_id == study.id))
    rng = random.Random(f"panelrank/claim/{study.seed}/{index}/{rater.id}")
    cells = _cells(db, study)
    by_stimuli = {(s.stimulus_a, s.stimulus_b): s.id for s in states.values()}
    short = {i for i, st in states.items() if st.short > 0}
    gold = _choose_gold(db, study, rater, cells, by_stimuli, rng, short)
    reserved = {g.item for g in gold if g.item is not None}
    blocked = held | reserved
    size = int(manifest.get("trials_per_session") or 30)
    if active_selection(study):
        chosen = _choose_active(db, study, states, blocked, size, rng)
    else:
        open_items = [s for i, s in states.items() if s.short > 0 and i not in blocked]
        open_items.sort(key=lambda s: (s.counted, rng.random()))
        chosen = open_items[:size]
    if not chosen:
        return None
    sess = Session(study_id=study.id, index=index, rater_id=rater.id, status="active", started_at=now,
                   last_seen_at=now)
    db.add(sess)
    db.flush()
    main_left = [_side(s, study.pairwise, rng) for s in chosen]
    slots = arrange_session(main_left, [g.a_left for g in gold], int(manifest.get("repeats_per_session") or 0),
                            study.pairwise, rng)
    written: dict[int, Trial] = {}
    for slot in slots:
        if slot.kind == "gold":
            g = gold[slot.index]
            trial = Trial(session_id=sess.id, position=slot.position, kind="gold", stimulus_a_id=g.stimulus_a,
                          stimulus_b_id=g.stimulus_b, reference_id=g.reference, a_left=slot.a_left,
                          gold_expected=g.expected, gold_tolerance=g.tolerance, item_id=g.item)
        else:
            s = chosen[slot.index]
            trial = Trial(session_id=sess.id, position=slot.position, kind=slot.kind, stimulus_a_id=s.stimulus_a,
                          stimulus_b_id=s.stimulus_b, reference_id=s.reference, a_left=slot.a_left, item_id=s.id)
            if slot.repeat_of is not None:
                trial.repeat_of = written[slot.repeat_of]
        written[slot.position] = trial
        db.add(trial)
    db.flush()
    return sess


def _side(s: ItemState, pairwise: bool, rng: random.Random) -> bool:
    """A on the left when the item has been shown that way less often (a coin decides a tie)."""
    if not pairwise:
        return True
    right = s.counted - s.left
    return s.left < right or (s.left == right and rng.random() < 0.5)


def _cells(db: DBSession, study: Study) -> dict[tuple[str, str], int]:
    """(content key, condition key) → stimulus id."""
    return {(c, k): i for i, c, k in db.execute(
        select(Stimulus.id, Content.key, Condition.key)
        .join(Content, Stimulus.content_id == Content.id).join(Condition, Stimulus.condition_id == Condition.id)
        .where(Stimulus.study_id == study.id)
    )}


def _choose_gold(db: DBSession, study: Study, rater: Rater, cells: dict[tuple[str, str], int],
                 by_stimuli: dict[tuple[int, int | None], int], rng: random.Random, short: set[int]) -> list[_Gold]:
    """``gold_per_session`` gold items: those this rater saw least, then those used least, as the plan rotates.

    A gold item that is also a design item still ``short`` of votes comes last: as this session's gold it could not
    be one of its main trials, and when it is the only item left every claim would take it as gold and none
    could collect its votes.
    """
    manifest = study.manifest
    n = int(manifest.get("gold_per_session") or 0)
    items = manifest.get("gold") or []
    if n < 1 or not items:
        return []
    shown_ref = None
    if study.test_method.reference == "shown":
        shown_ref = next(c["id"] for c in manifest["conditions"] if c.get("role") == "reference")
    used: Counter[tuple[int, int | None]] = Counter()
    left: Counter[tuple[int, int | None]] = Counter()
    mine: Counter[tuple[int, int | None]] = Counter()
    for a, b, a_left, rater_id in db.execute(
        select(Trial.stimulus_a_id, Trial.stimulus_b_id, Trial.a_left, Session.rater_id)
        .join(Session, Trial.session_id == Session.id)
        .where(Session.study_id == study.id, Trial.kind == "gold", Session.status != "planned")
    ):
        used[(a, b)] += 1
        left[(a, b)] += bool(a_left)
        mine[(a, b)] += rater_id == rater.id
    ranked = []
    for i, g in enumerate(items):
        a = cells[(g["content"], g["cond_a"])]
        b = cells[(g["content"], g["cond_b"])] if g.get("cond_b") else None
        item = by_stimuli.get((a, b)) if b is None else by_stimuli.get((a, b)) or by_stimuli.get((b, a))
        ranked.append(((item in short, mine[(a, b)], used[(a, b)], i), g, a, b))
    ranked.sort(key=lambda r: r[0])
    out = []
    for _, g, a, b in ranked[:n]:
        item = by_stimuli.get((a, b)) if b is None else by_stimuli.get((a, b)) or by_stimuli.get((b, a))
        shown_left = left[(a, b)]
        a_left = True
        if study.pairwise:
            other = used[(a, b)] - shown_left
            a_left = shown_left < other or (shown_left == other and rng.random() < 0.5)
        ref = cells[(g["content"], shown_ref)] if shown_ref else None
        out.append(_Gold(a, b, ref, int(g["expected"]), g.get("tolerance"), item, a_left))
    return out


# --------------------------------------------------------------------------- active selection


def _active_module() -> ModuleType:
    """:mod:`analysis.active` (imported when first needed: balanced studies never load it)."""
    from analysis import active

    return active


def pair_matrices(db: DBSession, study: Study, states: dict[int, ItemState] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wins, ties, pending) over the study's conditions, in condition order, from valid votes.

    ``wins[i, j]``: valid votes preferring condition i over j; ``ties`` symmetric (votes of 0);
    ``pending[i, j]`` (i < j, upper triangle only): main trials on the pair in flight —
    :func:`analysis.active.next_pairs` adds both cells of a pair, so a symmetric matrix would count them twice.
    """
    n = len(study.conditions)
    wins, ties, pending = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    states = item_states(db, study) if states is None else states
    for s in states.values():
        if s.cond_b is not None and s.pending:
            pending[min(s.cond_a, s.cond_b), max(s.cond_a, s.cond_b)] += s.pending
    rows = db.execute(
        select(Trial.item_id, Response.value)
        .join(Response, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id).join(Rater, Session.rater_id == Rater.id)
        .where(Session.study_id == study.id, Trial.kind == "main", Trial.item_id.is_not(None), valid_rater())
    )
    for item_id, value in rows:
        s = states.get(item_id)
        if s is None or s.cond_b is None:
            continue
        a, b = s.cond_a, s.cond_b
        if value > 0:
            wins[a, b] += 1
        elif value < 0:
            wins[b, a] += 1
        else:
            ties[a, b] += 1
            ties[b, a] += 1
    return wins, ties, pending


def _choose_active(db: DBSession, study: Study, states: dict[int, ItemState], blocked: set[int], size: int,
                   rng: random.Random) -> list[ItemState]:
    """Items for the pairs :func:`analysis.active.next_pairs` asks for, within the vote budget."""
    if study.status != "open":
        return []
    budget = int(study.manifest.get("vote_budget") or 0)
    k = min(size, budget - sum(s.counted for s in states.values()))
    if k <= 0:
        return []
    wins, ties, pending = pair_matrices(db, study, states)
    by_pair: dict[tuple[int, int], list[ItemState]] = {}
    for i, s in states.items():
        if s.cond_b is not None and i not in blocked:
            by_pair.setdefault((min(s.cond_a, s.cond_b), max(s.cond_a, s.cond_b)), []).append(s)
    if not by_pair:
        return []
    pairs = _active_module().next_pairs(wins, ties, k, pending=pending, seed=rng.randrange(2**31))
    chosen: list[ItemState] = []
    taken: set[int] = set()
    for i, j in pairs:
        options = [s for s in by_pair.get((min(i, j), max(i, j)), ()) if s.id not in taken]
        if not options:
            continue  # the rater judged every content of this pair already
        pick = min(options, key=lambda s: (s.counted, rng.random()))
        chosen.append(pick)
        taken.add(pick.id)
        pick.pending += 1  # the next pick on this pair sees it
    return chosen


def stopping_state(db: DBSession, study: Study) -> Any:
    """:func:`analysis.active.stopping_state` of an active-selection study (valid votes only)."""
    states = item_states(db, study)
    wins, ties, _ = pair_matrices(db, study, states)
    used = int(sum(s.votes for s in states.values()))
    budget = study.manifest.get("vote_budget")
    return _active_module().stopping_state(wins, ties, alpha=float(study.manifest.get("alpha") or 0.05),
                                           votes_used=used, budget=int(budget) if budget else None)


def maybe_stop(db: DBSession, study: Study, force: bool = False) -> bool:
    """After a vote: close an active-selection study whose stopping rule says it is done; True if closed.

    Checked every :data:`STOP_CHECK_EVERY` valid votes (or when ``force``), and whenever the budget is
    spent. Run in its own transaction after the vote committed (it locks the study row). The caller commits.
    """
    if not active_selection(study) or study.status != "open":
        return False
    used = db.scalar(
        select(func.count(Response.id)).select_from(Trial).join(Response, Response.trial_id == Trial.id)
        .join(Session, Trial.session_id == Session.id).join(Rater, Session.rater_id == Rater.id)
        .where(Session.study_id == study.id, Trial.kind == "main", valid_rater())
    ) or 0
    budget = int(study.manifest.get("vote_budget") or 0)
    if not force and used % STOP_CHECK_EVERY and used < budget:
        return False
    state = stopping_state(db, study)
    if not state.done:
        return False
    result = db.execute(update(Study).where(Study.id == study.id, Study.status == "open").values(status="closed")
                        .execution_options(synchronize_session=False))
    db.expire(study, ["status"])
    return result.rowcount == 1
