"""Which session a rater gets: a pre-planned one they hold no item of, claimed safely under concurrency.

Sessions are planned before anyone arrives (status ``planned``, no rater), each item's
votes spread over several of them. A rater who comes back for another session must not
judge an item they already judged or hold: that would be one person's opinion counted
twice and one fewer distinct rater on that item. So a claim

1. orders the planned sessions by how many of their main items the rater already holds
   (in any earlier session of this study), fewest first, then by index — a first-time
   rater simply gets the lowest index, as always (:func:`preference`);
2. claims the first one it can (below);
3. swaps what still overlaps for main trials of other planned sessions, and, looking
   ahead, items that the raters still to come could no longer all take (:func:`plan_swaps`).
   A swap exchanges what two unclaimed trials show (both stimuli and the side, so every
   item keeps its number of votes and its left/right balance; consistency repeats follow
   their original); positions, gold and repeats stay where the plan put them.

Near the end of a tight study (as many raters as votes an item needs, plus one or two) a
rater's last sessions can be left with nothing to swap with; then the least overlap is all
there is. Assigning trials only when a rater arrives would lift that limit.

Several gunicorn workers may claim at the same instant, so a claim must never hand one
session to two raters, and a swap may only touch sessions nobody else is claiming:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` — concurrent claimers skip the row
  another transaction is taking instead of queueing behind it. The sessions a swap takes
  trials from are locked the same way (and re-read once locked); one that is locked
  elsewhere is not swapped with. Only when every planned row is locked does a claimer wait
  for a lock, since a row locked only as a swap partner stays planned.
* SQLite (no row locks): a conditional ``UPDATE … WHERE status = 'planned'``; a
  rowcount of 0 means someone else won the row, so order again and try the next one.
  A successful claim holds the database's write lock until commit, so the swaps that
  follow read and write with no other writer in between.

One rater may also claim twice at the same instant (two tabs, a retried consent). Before
anything else a claim raises the rater's ``sessions_claimed`` with one conditional UPDATE
(``… WHERE sessions_claimed < cap``): that UPDATE is the cap, atomic on both databases, and
its lock (the row's on PostgreSQL, the write lock on SQLite) makes the second claim wait for
the first to commit. The second then sees the first one's active session and hands it back
(:class:`SessionHeld`) instead of claiming another. A partial unique index (one ``active``
session per rater) keeps that true whatever else writes.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import NoReturn

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session as DBSession

from study_app.models import Rater, Session, Study, Trial, utcnow

# Claim attempts before concluding the study is full (each loss means another rater won a row).
_MAX_ATTEMPTS = 50
# Planned sessions offered to one ``FOR UPDATE SKIP LOCKED`` query, in order of preference.
_BATCH = 64
# Cost of one item a rater would judge twice, against 1 for each vote the raters still to come could not all
# cast: removing an overlap always wins.
_OVERLAP = 1_000
# How many of the best-ranked planned sessions a returning rater's claim tries its swaps on before choosing.
_CONSIDER = 4

#: An item in database terms: the stimulus ids of a trial, a pair sorted (so A/B order does not matter);
#: ``(stimulus, None)`` for a single-stimulus trial.
ItemKey = tuple[int, int | None]


def latest_session(db: DBSession, rater: Rater) -> Session | None:
    """The rater's most recently claimed session, whatever its status."""
    return db.scalar(
        select(Session).where(Session.rater_id == rater.id).order_by(Session.started_at.desc(), Session.id.desc())
    )


def sessions_taken(db: DBSession, rater: Rater) -> int:
    """How many sessions this rater has claimed (the cap counts every one, finished or not)."""
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


def planned_left(db: DBSession, study: Study) -> int:
    return db.scalar(
        select(func.count()).select_from(Session).where(Session.study_id == study.id, Session.status == "planned")
    ) or 0


# --------------------------------------------------------------------------- the study as plain data


def item_key(stimulus_a: int, stimulus_b: int | None) -> ItemKey:
    """The item a trial asks about, whichever condition is A."""
    return (stimulus_a, None) if stimulus_b is None else (min(stimulus_a, stimulus_b), max(stimulus_a, stimulus_b))


@dataclass
class Snapshot:
    """What a claim decides on: every session of a study with its movable and fixed items.

    ``main`` holds each session's main trials as (trial id, item) — the only trials a swap moves;
    ``fixed`` the items of its gold trials (they stay, and no session may hold an item twice).
    Repeats are left out: they show an item of their own session's main trials.
    """

    index: dict[int, int] = field(default_factory=dict)  # session id -> plan index
    status: dict[int, str] = field(default_factory=dict)
    rater: dict[int, int | None] = field(default_factory=dict)
    main: dict[int, list[tuple[int, ItemKey]]] = field(default_factory=dict)
    fixed: dict[int, set[ItemKey]] = field(default_factory=dict)

    def items(self, session_id: int) -> set[ItemKey]:
        """Everything the session shows (main and gold)."""
        return {item for _, item in self.main[session_id]} | self.fixed[session_id]

    def held(self, rater_id: int, but: int | None = None) -> set[ItemKey]:
        """Main items of every session ``rater_id`` holds (except session ``but``)."""
        return {item for sid, r in self.rater.items() if r == rater_id and sid != but for _, item in self.main[sid]}

    def planned(self) -> list[int]:
        return sorted((sid for sid, s in self.status.items() if s == "planned"), key=self.index.__getitem__)


def load_snapshot(db: DBSession, study: Study) -> Snapshot:
    """Sessions and trials of ``study`` as they are now (two queries)."""
    snap = Snapshot()
    for sid, index, status, rater_id in db.execute(
        select(Session.id, Session.index, Session.status, Session.rater_id).where(Session.study_id == study.id)
    ):
        snap.index[sid], snap.status[sid], snap.rater[sid] = index, status, rater_id
        snap.main[sid], snap.fixed[sid] = [], set()
    rows = db.execute(
        select(Trial.id, Trial.session_id, Trial.kind, Trial.stimulus_a_id, Trial.stimulus_b_id)
        .join(Session, Trial.session_id == Session.id)
        .where(Session.study_id == study.id, Trial.kind != "repeat")
        .order_by(Trial.session_id, Trial.position)
    )
    for trial_id, sid, kind, a, b in rows:
        if kind == "main":
            snap.main[sid].append((trial_id, item_key(a, b)))
        else:
            snap.fixed[sid].add(item_key(a, b))
    return snap


# --------------------------------------------------------------------------- choosing (pure)


def preference(snap: Snapshot, rater_id: int, max_sessions: int, out: frozenset[int] = frozenset()) -> list[int]:
    """Planned session ids in the order ``rater_id`` should get them.

    Ranked by how many of their main items the rater already holds, fewest first, then plan
    order (so a first-time rater gets the lowest index, as before). For a returning rater the
    first ``_CONSIDER`` are re-ordered by what :func:`plan_swaps` can make of each: the session
    with the least overlap is not always the one whose overlap can be swapped away.
    """
    seen = snap.held(rater_id)
    ranked = sorted(snap.planned(), key=lambda sid: (sum(item in seen for _, item in snap.main[sid]), snap.index[sid]))
    head = ranked[:_CONSIDER]
    if seen:
        cost = {sid: plan_swaps(snap, sid, rater_id, max_sessions, out=out)[1] for sid in head}
        head.sort(key=cost.__getitem__)  # stable: equal cost keeps the ranking
    return head + ranked[_CONSIDER:]


def plan_swaps(snap: Snapshot, session: int, rater_id: int, max_sessions: int, partners: set[int] | None = None,
               out: frozenset[int] = frozenset()) -> tuple[list[tuple[int, int, int]], tuple[int, int, int]]:
    """Trial swaps that give ``rater_id``, taking ``session``, no item twice and keep the rest takeable.

    The cost of a state is, first, the main items of ``session`` the rater already holds
    elsewhere; then, summed over items, the planned votes left on an item beyond the raters who
    could still cast them: those coming back (fewer than ``max_sessions`` claimed, not in
    ``out``, not holding the item) and the fewest newcomers that would take the sessions left.
    Greedy: apply the swap that lowers the cost most until none does. A swap exchanges a main
    trial of ``session`` with one of another planned session (one of ``partners`` if given);
    no session ever gets an item it already shows, as main trial or gold.

    Parameters
    ----------
    snap
        The study; ``session`` may still be planned there or already be the rater's.
    session, rater_id
        The session being claimed and who claims it.
    max_sessions
        The study's ``max_sessions_per_rater``.
    partners
        Planned sessions that may give trials (those this transaction could lock); None: all.
    out
        Raters who will not get another session (screened out).

    Returns
    -------
    swaps : list of (trial of ``session``, other session, trial of that session)
        Trials whose content to exchange, in this order; empty when the session is fine as it is.
    cost : (items judged twice, votes left that the raters still to come could not all cast, items left with
        no spare rater)
        After the swaps; compared in this order.
    """
    seen = snap.held(rater_id, but=session)
    mine = dict(snap.main[session])  # trial id -> item, as the swaps go
    mine_items = snap.items(session)
    pool_sessions = [sid for sid in snap.planned() if sid != session]
    shows = {t: item for sid in pool_sessions for t, item in snap.main[sid]}
    where: dict[ItemKey, list[int]] = {}  # item -> trials showing it in the pool, in plan order (trial id order)
    for t, item in shows.items():
        where.setdefault(item, []).append(t)
    session_of = {t: sid for sid in pool_sessions for t, _ in snap.main[sid]}
    session_items = {sid: snap.items(sid) for sid in pool_sessions}
    pool = Counter({item: len(ts) for item, ts in where.items()})

    taken = Counter(r for sid, r in snap.rater.items() if r is not None and sid != session)
    taken[rater_id] += 1
    back = {r for r in taken if r != rater_id and r not in out and taken[r] < max_sessions}
    rater_back = rater_id not in out and taken[rater_id] < max_sessions
    spare = sum(max_sessions - taken[r] for r in back) + (max_sessions - taken[rater_id] if rater_back else 0)
    takers = len(back) + math.ceil(max(0, len(pool_sessions) - spare) / max_sessions)  # + the fewest newcomers
    held_by_back = Counter(item for sid, r in snap.rater.items() if r in back for _, item in snap.main[sid])

    def margin(item: ItemKey, copies: int, mine_has: bool) -> int:
        """Raters who could still cast a vote on ``item``, less its votes left in the pool."""
        can = takers - held_by_back[item] + (rater_back and not mine_has and item not in seen)
        return can - copies

    def short(item: ItemKey, copies: int, mine_has: bool) -> int:
        """Votes on ``item`` left in the pool beyond the raters who could still cast them."""
        return max(0, -margin(item, copies, mine_has))

    def leave(item: ItemKey) -> int:  # cost change when ``item`` goes from ``session`` to the pool
        twice = _OVERLAP if item in seen else 0
        return short(item, pool[item] + 1, False) - short(item, pool[item], True) - twice

    def enter(item: ItemKey) -> int:  # cost change when ``item`` comes from the pool into ``session``
        return short(item, pool[item] - 1, True) - short(item, pool[item], False)

    swaps: list[tuple[int, int, int]] = []
    while True:
        best: tuple[int, int, int] | None = None  # (cost change, my trial, their trial)
        wanted = sorted((enter(y), ts[0], y) for y, ts in where.items() if ts and y not in seen and y not in mine_items)
        for mine_trial, x in sorted(mine.items(), key=lambda kv: (leave(kv[1]), kv[0])):
            dx = leave(x)
            if not wanted or dx + wanted[0][0] >= (best[0] if best else 0):
                break  # sorted: no trial further along can do better
            for dy, _, y in wanted:
                if dx + dy >= (best[0] if best else 0):
                    break  # sorted: nothing further along is better
                theirs = next((t for t in where[y] if (partners is None or session_of[t] in partners)
                               and x not in session_items[session_of[t]]), None)
                if theirs is not None:
                    best = (dx + dy, mine_trial, theirs)
                    break
        if best is None:
            break
        _, mine_trial, theirs = best
        x, y, sid = mine[mine_trial], shows[theirs], session_of[theirs]
        mine[mine_trial], shows[theirs] = y, x
        mine_items = (mine_items - {x}) | {y}
        session_items[sid] = (session_items[sid] - {y}) | {x}
        where[y].remove(theirs)
        bisect.insort(where.setdefault(x, []), theirs)
        pool[x] += 1
        pool[y] -= 1
        swaps.append((mine_trial, sid, theirs))
    taking = set(mine.values())
    left = [(item, n, item in taking) for item, n in pool.items() if n]
    # Items that need every rater who could still cast them: one more unlucky claim and a vote is lost.
    # Gold that is also a design item makes them common (no session may hold its own gold as a main
    # trial). Avoiding them when the first two counts tie halved the votes the last raters cast twice
    # (the demo design claimed by 10 raters × 3 sessions, 200 seeds: 38 → 19 with gold, 16 → 6 without).
    tight = sum(margin(*it) <= 0 for it in left)
    return swaps, (len(taking & seen), sum(short(*it) for it in left), tight)


# --------------------------------------------------------------------------- claiming


def claim_session(db: DBSession, study: Study, rater: Rater) -> Session | None:
    """Give ``rater`` a planned session of ``study`` with no main item they already hold; None when none is left.

    The planned sessions are tried in :func:`preference` order, then what still overlaps is
    swapped away (:func:`plan_swaps`). Plan order alone handed a rater's second and third
    session whatever came next, and they judged many items a second time: fewer distinct
    raters per item than the study could have had.

    The caller commits. On PostgreSQL the claimed row (and any swap partner) stays locked until then,
    and so does the rater's row: another claim for the same rater waits for that commit.

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
    snap: Snapshot | None = None
    if study.max_sessions_per_rater == 1:
        # Every claim is a rater's first and last: nothing to avoid, and no swap can lower the cost (nobody
        # comes back, so every item left can be taken by the newcomers), so the plan itself need not be read.
        claimed = _claim_first(db, study, rater)
        if claimed is None:
            _uncount_claim(db, rater)
        return claimed
    if db.get_bind().dialect.name == "postgresql":
        claimed = _claim_locked(db, study, rater)
    else:
        claimed, snap = _claim_conditional(db, study, rater)
    if claimed is None:
        _uncount_claim(db, rater)  # the study is full: this rater took nothing
        return None
    _swap_overlap(db, study, claimed, snap)
    return claimed


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


def _order(db: DBSession, study: Study, rater: Rater) -> list[int]:
    snap = load_snapshot(db, study)
    return preference(snap, rater.id, study.max_sessions_per_rater, out=_screened_out(snap))


def _claim_locked(db: DBSession, study: Study, rater: Rater) -> Session | None:
    for _ in range(_MAX_ATTEMPTS):
        order = _order(db, study, rater)
        if not order:
            return None
        for start in range(0, len(order), _BATCH):
            batch = order[start:start + _BATCH]
            found = db.scalar(
                select(Session)
                .where(Session.id.in_(batch), Session.status == "planned")
                .order_by(case({sid: i for i, sid in enumerate(batch)}, value=Session.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if found is not None:
                return _mark_claimed(db, found, rater)
        # Every planned row is locked: being claimed, or only lent to another claim as a swap partner
        # (planned again at its commit). Wait for one; a row claimed meanwhile no longer matches.
        found = db.scalar(
            select(Session)
            .where(Session.study_id == study.id, Session.status == "planned")
            .order_by(Session.index)
            .limit(1)
            .with_for_update()
        )
        if found is not None:
            return _mark_claimed(db, found, rater)
    return None


def _claim_first(db: DBSession, study: Study, rater: Rater) -> Session | None:
    """The lowest planned index, as :func:`preference` orders it for a rater who holds nothing."""
    planned = (select(Session).where(Session.study_id == study.id, Session.status == "planned")
               .order_by(Session.index).limit(1))
    if db.get_bind().dialect.name != "postgresql":
        found = db.scalar(planned)  # this transaction holds the write lock: nobody else is claiming
        return None if found is None else _mark_claimed(db, found, rater)
    for _ in range(_MAX_ATTEMPTS):
        found = db.scalar(planned.with_for_update(skip_locked=True))
        if found is None and planned_left(db, study):
            found = db.scalar(planned.with_for_update())  # every planned row is locked: wait for one
        if found is not None:
            return _mark_claimed(db, found, rater)
        if not planned_left(db, study):
            return None
    return None


def _mark_claimed(db: DBSession, found: Session, rater: Rater) -> Session:
    found.rater_id = rater.id
    found.status = "active"
    found.started_at = utcnow()
    db.flush()
    return found


def _claim_conditional(db: DBSession, study: Study, rater: Rater) -> tuple[Session | None, Snapshot | None]:
    """Claim on SQLite; also returns the snapshot the choice was made on, with the claim applied.

    The caller already holds the write lock (:func:`_count_claim` wrote first), so that snapshot
    stays exact until commit and the swaps need not read the study again while every other
    writer waits.
    """
    for _ in range(_MAX_ATTEMPTS):
        snap = load_snapshot(db, study)
        order = preference(snap, rater.id, study.max_sessions_per_rater, out=_screened_out(snap))
        if not order:
            return None, None
        result = db.execute(
            update(Session)
            .where(Session.id == order[0], Session.status == "planned")
            .values(rater_id=rater.id, status="active", started_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed = db.get(Session, order[0])
            assert claimed is not None
            db.refresh(claimed)
            snap.status[claimed.id], snap.rater[claimed.id] = "active", rater.id
            return claimed, snap
    return None, None


def _swap_overlap(db: DBSession, study: Study, claimed: Session, snap: Snapshot | None = None) -> None:
    """Apply :func:`plan_swaps` to a session this transaction has just claimed (``snap``: the study as it
    is now, when nothing can have changed since it was read; else it is read again)."""
    assert claimed.rater_id is not None
    snap = snap or load_snapshot(db, study)
    out = _screened_out(snap)
    swaps, _ = plan_swaps(snap, claimed.id, claimed.rater_id, study.max_sessions_per_rater, out=out)
    if swaps and db.get_bind().dialect.name == "postgresql":
        # Take trials only from sessions this transaction holds; plan again on what they show once locked.
        partners = set(db.scalars(
            select(Session.id)
            .where(Session.id.in_({sid for _, sid, _ in swaps}), Session.status == "planned")
            .with_for_update(skip_locked=True)
        ))
        snap = load_snapshot(db, study)
        swaps, _ = plan_swaps(snap, claimed.id, claimed.rater_id, study.max_sessions_per_rater,
                              partners=partners, out=out)
    for mine, _, theirs in swaps:
        _exchange(db, mine, theirs)
    if swaps:
        db.flush()
        db.expire(claimed, ["trials"])


def _screened_out(snap: Snapshot) -> frozenset[int]:
    return frozenset(r for sid, r in snap.rater.items() if r is not None and snap.status[sid] == "screened_out")


def _exchange(db: DBSession, first_id: int, second_id: int) -> None:
    """Swap what two unanswered trials show; their consistency repeats follow (keeping their side relation)."""
    first, second = db.get(Trial, first_id), db.get(Trial, second_id)
    assert first is not None and second is not None
    repeats = {t: list(db.scalars(select(Trial).where(Trial.repeat_of_id == t.id))) for t in (first, second)}
    was = {t: (t.stimulus_a_id, t.stimulus_b_id, t.reference_id, t.a_left) for t in (first, second)}
    for trial, source in ((first, second), (second, first)):
        a, b, ref, left = was[source]
        for rep in repeats[trial]:
            rep.stimulus_a_id, rep.stimulus_b_id, rep.reference_id = a, b, ref
            rep.a_left = rep.a_left != (was[trial][3] != left)  # flipped iff the original's side flips
        trial.stimulus_a_id, trial.stimulus_b_id, trial.reference_id, trial.a_left = a, b, ref, left
