"""The plan: a valid design's items packed into sessions of trials.

Every item gets its votes (balanced over left/right), each session its gold trials and
its consistency repeats, in a position-randomised order. Pure functions over plain data:
the same :class:`~study_app.design.DesignSpec` with the same ``seed`` always yields the
same :class:`Plan`, so the seed stored with a study reproduces its plan exactly. What the
items are, and whether a spec is valid, is :mod:`study_app.design`'s part.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from analysis.methods import METHODS
from study_app.design import DesignSpec, Item, TrialKind, design_items, item_key, references, rng_for

#: Minimum distance (in positions) between a trial and its consistency repeat, so
#: the rater cannot simply remember the answer they just gave.
REPEAT_GAP = 3


@dataclass(frozen=True)
class PlannedTrial:
    """One question in a session.

    ``cond_b`` is the second condition of a pair (None for single-stimulus
    methods). ``reference`` is the condition shown first in DCR. ``a_left``
    says whether ``cond_a`` is displayed on the left. ``repeat_of`` is the
    position (within the same session) of the original of a consistency repeat.
    """

    position: int
    kind: TrialKind
    content: str
    cond_a: str
    cond_b: str | None = None
    a_left: bool = True
    repeat_of: int | None = None
    gold_expected: int | None = None
    gold_tolerance: int | None = None
    reference: str | None = None


@dataclass(frozen=True)
class PlannedSession:
    index: int
    trials: tuple[PlannedTrial, ...]


@dataclass(frozen=True)
class Plan:
    spec: DesignSpec
    items: tuple[tuple[str, str, str | None], ...]  # (content, cond_a, cond_b) before repetition
    sessions: tuple[PlannedSession, ...] = field(default_factory=tuple)


@dataclass
class _Draft:
    """One session under construction: main trials as (item index, a_left), gold as (gold index, a_left)."""

    main: list[tuple[int, bool]]
    gold: list[tuple[int, bool]] = field(default_factory=list)


def make_plan(spec: DesignSpec) -> Plan:
    """Turn a design into sessions of position-randomised trials.

    Every item gets exactly ``votes_per_item`` main trials, balanced over
    left/right; main trials are packed ``trials_per_session`` to a session
    (fewer only in the last session, or in all of them when there are fewer
    items than that) with no item twice in a session; each session then gets
    exactly ``gold_per_session`` gold trials, none of them one of its main
    items, and its consistency repeats.

    Parameters
    ----------
    spec
        A valid design. ``spec.seed`` fixes every random choice.

    Returns
    -------
    Plan
        Identical for identical specs.

    Raises
    ------
    ValueError
        Listing every problem :func:`study_app.design.validate_spec` finds.
    """
    items = design_items(spec)
    rng = rng_for(spec, "plan")
    size = min(spec.trials_per_session, len(items))  # never duplicate an item to fill a session
    drafts = [_Draft([(i, True) for i in main]) for main in _pack_main(len(items), spec.votes_per_item, size, rng)]
    _assign_sides(drafts, len(items), spec.pairwise, rng)
    _spread_gold_items(drafts, spec, items)
    _assign_gold(drafts, spec, items, rng)
    sessions = tuple(_finish_session(i, d, spec, items, rng) for i, d in enumerate(drafts))
    return Plan(spec=spec, items=tuple(items), sessions=sessions)


def _pack_main(n_items: int, votes: int, size: int, rng: random.Random) -> list[list[int]]:
    """Cut ``votes`` shuffled rounds of all items into sessions of ``size`` distinct items.

    A session that straddles two rounds takes the rest of the old round and
    fills up with next-round items it does not already hold; ``size <= n_items``
    guarantees enough of those exist. Linear time: no repair passes.
    """
    sessions: list[list[int]] = []
    pool: list[int] = []  # what is left of the current round, consumed from the end
    rounds_left = votes
    while pool or rounds_left:
        take = pool[-size:]
        del pool[-size:]
        if len(take) < size and rounds_left:
            pool = list(range(n_items))
            rng.shuffle(pool)
            rounds_left -= 1
            take += _draw_excluding(pool, size - len(take), set(take))
        sessions.append(take)
    return sessions


def _draw_excluding(pool: list[int], n: int, exclude: set[int]) -> list[int]:
    """Remove and return the last ``n`` entries of ``pool`` that are not in ``exclude``."""
    drawn: list[int] = []
    i = len(pool)
    while len(drawn) < n:
        i -= 1
        if pool[i] not in exclude:
            drawn.append(pool.pop(i))  # pops near the end of the list: cheap
    return drawn


def _assign_sides(drafts: list[_Draft], n_items: int, pairwise: bool, rng: random.Random) -> None:
    """Alternate each item's A-left / B-left over its showings, from a random start.

    Alternation (rather than coin flips) makes the two sides differ by at most
    one per item, so position bias cancels in every item's votes.
    """
    if not pairwise:
        return
    nxt = [bool(rng.getrandbits(1)) for _ in range(n_items)]
    for d in drafts:
        for j, (item, _) in enumerate(d.main):
            d.main[j] = (item, nxt[item])
            nxt[item] = not nxt[item]


def _gold_as_items(spec: DesignSpec, items: list[Item]) -> list[int | None]:
    """For each gold item, the index of the design item it also is (None if it is not one)."""
    index = {item_key(*it): i for i, it in enumerate(items)}
    return [index.get(item_key(g.content, g.cond_a, g.cond_b)) for g in spec.gold]


def _spread_gold_items(drafts: list[_Draft], spec: DesignSpec, items: list[Item]) -> None:
    """Swap main trials between sessions until none holds more than ``len(gold) - gold_per_session`` gold items.

    A session cannot take a gold item that is one of its main trials, so one holding more
    would get too few gold. Swapping whole (item, a_left) entries keeps every item's votes,
    its left/right balance and "no item twice in a session". Sessions are repaired in
    index order and a receiving session never goes over the limit, so each repair is final;
    the gold-supply check of :func:`study_app.design.spec_problems` guarantees a repair exists.
    Collisions are rare in big studies, so this is a linear count plus a little work per collision.
    """
    slack = len(spec.gold) - spec.gold_per_session
    golden = {i for i in _gold_as_items(spec, items) if i is not None}
    if spec.gold_per_session < 1 or len(golden) <= slack:
        return
    rng = rng_for(spec, "gold")  # its own stream: plans without collisions stay exactly as they were
    held = [sum(i in golden for i, _ in d.main) for d in drafts]
    for i in range(len(drafts)):
        while held[i] > slack:
            if not _relieve(i, drafts, held, golden, slack, rng):
                raise AssertionError(f"session {i}: no swap frees its gold (validate_spec should have refused)")


def _relieve(i: int, drafts: list[_Draft], held: list[int], golden: set[int], slack: int,
             rng: random.Random) -> bool:
    """Move one gold item's main trial out of session ``i`` (or, failing that, make room for it); False if stuck."""
    start = rng.randrange(len(drafts))  # from a random session on, then round: lazily, the first one usually does

    def order() -> Iterator[int]:
        return itertools.chain(range(start, len(drafts)), range(start))

    def has_room(j: int) -> bool:
        return j != i and held[j] < min(slack, len(drafts[j].main))

    if any(_swap_gold_out(i, j, drafts, held, golden, rng) for j in order() if has_room(j)):
        return True
    # Only the short last session has room, and every non-gold item it could give back session i
    # holds already. A session k at or over the limit that lacks one of those items passes a gold
    # item there instead; at the limit, that frees a place in k (a full session) for one of i's.
    room = [j for j in order() if has_room(j)]
    for k in order():
        if k != i and held[k] >= slack and any(_swap_gold_out(k, j, drafts, held, golden, rng) for j in room):
            return held[k] >= slack or _swap_gold_out(i, k, drafts, held, golden, rng)
    return False


def _swap_gold_out(p: int, q: int, drafts: list[_Draft], held: list[int], golden: set[int],
                   rng: random.Random) -> bool:
    """Swap a main trial of a gold item in session ``p`` with one of a non-gold item in ``q``, if neither
    session then holds an item twice; False when no such pair exists."""
    in_p = {item for item, _ in drafts[p].main}
    in_q = {item for item, _ in drafts[q].main}
    give = [n for n, (item, _) in enumerate(drafts[p].main) if item in golden and item not in in_q]
    take = [n for n, (item, _) in enumerate(drafts[q].main) if item not in golden and item not in in_p]
    if not give or not take:
        return False
    a, b = rng.choice(give), rng.choice(take)
    drafts[p].main[a], drafts[q].main[b] = drafts[q].main[b], drafts[p].main[a]
    held[p] -= 1
    held[q] += 1
    return True


def _assign_gold(drafts: list[_Draft], spec: DesignSpec, items: list[Item], rng: random.Random) -> None:
    """Deal gold round-robin, ``gold_per_session`` to each session.

    A gold item that is also one of the session's main items would show the
    same thing twice; it is skipped there (the next gold in the rotation takes
    its place). :func:`_spread_gold_items` has left every session enough gold
    that is not among its main items, so each gets exactly ``gold_per_session``.
    """
    gold = spec.gold
    if not gold or spec.gold_per_session < 1:
        return
    as_item = _gold_as_items(spec, items)
    nxt = [bool(rng.getrandbits(1)) if spec.pairwise else True for _ in gold]
    cursor = 0  # the next gold in the rotation
    for d in drafts:
        in_session = {item for item, _ in d.main}
        start = cursor
        for step in range(len(gold)):  # at most one lap: each gold at most once per session
            if len(d.gold) == spec.gold_per_session:
                break
            g = (start + step) % len(gold)
            if as_item[g] is None or as_item[g] not in in_session:
                d.gold.append((g, nxt[g]))
                nxt[g] = nxt[g] != spec.pairwise  # flips for pairs, stays True for ratings
                cursor = (g + 1) % len(gold)
        assert len(d.gold) == spec.gold_per_session  # guaranteed by _spread_gold_items


def _finish_session(index: int, d: _Draft, spec: DesignSpec, items: list[Item], rng: random.Random) -> PlannedSession:
    """Shuffle main and gold trials together, then slot in the consistency repeats."""
    base: list[tuple[TrialKind, int, bool]] = [("main", i, left) for i, left in d.main]
    base += [("gold", g, left) for g, left in d.gold]
    rng.shuffle(base)
    repeats = _place_repeats(base, spec.repeats_per_session, rng)
    ref = references(spec)[0] if METHODS[spec.method].reference == "shown" else None
    trials: list[PlannedTrial] = []
    final_pos: list[int] = []  # base index -> final position
    for gap in range(len(base) + 1):
        for orig in repeats.get(gap, ()):
            trials.append(_repeat_trial(trials[final_pos[orig]], len(trials), spec.pairwise))
        if gap < len(base):
            final_pos.append(len(trials))
            trials.append(_base_trial(len(trials), base[gap], spec, items, ref))
    return PlannedSession(index=index, trials=tuple(trials))


@dataclass(frozen=True)
class Slot:
    """One position of a session built on demand (:func:`arrange_session`).

    ``index`` points into the caller's list of main or gold trials (a repeat: that of its
    original); ``repeat_of`` is the original's position.
    """

    position: int
    kind: TrialKind
    index: int
    a_left: bool
    repeat_of: int | None = None


def arrange_session(main: Sequence[bool], gold: Sequence[bool], repeats: int, pairwise: bool,
                    rng: random.Random) -> list[Slot]:
    """Order one session's trials as the plan does: main and gold shuffled together, repeats slotted in.

    Parameters
    ----------
    main, gold
        ``a_left`` of each main and each gold trial, in the caller's order.
    repeats
        Consistency repeats wanted (fewer when the session is too short for the gap of
        :data:`REPEAT_GAP`).
    pairwise
        Repeats of pairs swap sides.
    rng
        Every random choice.

    Returns
    -------
    list of Slot
        In position order.
    """
    base: list[tuple[TrialKind, int, bool]] = [("main", i, left) for i, left in enumerate(main)]
    base += [("gold", g, left) for g, left in enumerate(gold)]
    rng.shuffle(base)
    gaps = _place_repeats(base, repeats, rng)
    slots: list[Slot] = []
    final_pos: list[int] = []
    for gap in range(len(base) + 1):
        for orig in gaps.get(gap, ()):
            first = slots[final_pos[orig]]
            slots.append(Slot(len(slots), "repeat", first.index, first.a_left != pairwise, first.position))
        if gap < len(base):
            final_pos.append(len(slots))
            kind, index, left = base[gap]
            slots.append(Slot(len(slots), kind, index, left))
    return slots


def _place_repeats(base: list[tuple[TrialKind, int, bool]], wanted: int, rng: random.Random) -> dict[int, list[int]]:
    """Choose repeat originals and where each copy goes.

    Returns ``{gap: [base index of original, ...]}``; a copy at ``gap`` is
    inserted just before ``base[gap]``. Requiring ``gap >= original + REPEAT_GAP``
    in base indexes is enough: other copies inserted in between only widen the
    distance. Originals are distinct main trials; when the session is too short,
    fewer repeats are made rather than violating the gap.
    """
    n = len(base)
    eligible = [p for p in range(n - REPEAT_GAP + 1) if base[p][0] == "main"]
    originals = rng.sample(eligible, min(wanted, len(eligible)))
    gaps: dict[int, list[int]] = {}
    for p in originals:
        gaps.setdefault(rng.randint(p + REPEAT_GAP, n), []).append(p)
    return gaps


def _base_trial(
    position: int, entry: tuple[TrialKind, int, bool], spec: DesignSpec, items: list[Item], ref: str | None
) -> PlannedTrial:
    kind, idx, a_left = entry
    if kind == "main":
        content, cond_a, cond_b = items[idx]
        return PlannedTrial(position, "main", content, cond_a, cond_b, a_left, reference=ref)
    g = spec.gold[idx]
    return PlannedTrial(position, "gold", g.content, g.cond_a, g.cond_b, a_left,
                        gold_expected=g.expected, gold_tolerance=g.tolerance, reference=ref)


def _repeat_trial(orig: PlannedTrial, position: int, pairwise: bool) -> PlannedTrial:
    # Swapping sides for pairs tests the rater, not their memory of a screen layout.
    a_left = not orig.a_left if pairwise else orig.a_left
    return PlannedTrial(position, "repeat", orig.content, orig.cond_a, orig.cond_b, a_left,
                        repeat_of=orig.position, reference=orig.reference)


# --------------------------------------------------------------------------- summary


def plan_summary(plan: Plan) -> dict[str, int]:
    """Counts for CLI output.

    Returns
    -------
    dict
        ``items``, ``sessions``, ``trials`` and the trials of each kind
        (``main``, ``repeat``, ``gold``), plus the shortest and longest session.
    """
    counts = Counter(t.kind for s in plan.sessions for t in s.trials)
    lengths = [len(s.trials) for s in plan.sessions] or [0]
    return {
        "items": len(plan.items),
        "sessions": len(plan.sessions),
        "trials": sum(counts.values()),
        "main": counts["main"],
        "repeat": counts["repeat"],
        "gold": counts["gold"],
        "min_session_trials": min(lengths),
        "max_session_trials": max(lengths),
    }
