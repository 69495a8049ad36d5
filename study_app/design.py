"""Study design: what a study asks (its items) and whether a design spec is valid.

Pure functions over plain data: no database, no Flask. A :class:`DesignSpec` (taken from a
validated manifest) names the method, conditions, contents and vote counts; :func:`design_items`
lists the things to vote on, :func:`spec_problems` everything wrong with a spec. Packing the
items into sessions is :mod:`study_app.plan`'s part.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Literal

from analysis.methods import METHODS

PairDesign = Literal["all_pairs", "vs_reference", "random_k"]
TrialKind = Literal["main", "repeat", "gold"]
Role = Literal["reference", "baseline", "submission"]


@dataclass(frozen=True)
class GoldItem:
    """A trial with a known answer.

    For pairwise methods ``cond_b`` is set and ``expected`` is a ``pref``
    relative to (``cond_a``, ``cond_b``); for rating methods ``cond_b`` is None
    and ``expected`` is a score (``cond_a`` is the rated condition).
    """

    content: str
    cond_a: str
    cond_b: str | None
    expected: int
    tolerance: int = 1


@dataclass(frozen=True)
class DesignSpec:
    """Everything the plan depends on (taken from a validated manifest)."""

    method: str
    conditions: tuple[str, ...]
    roles: dict[str, Role]
    contents: tuple[str, ...]
    pairwise: bool
    design: PairDesign = "all_pairs"
    k: int | None = None  # pairs per content for random_k
    votes_per_item: int = 1  # per (content, pair) or per stimulus
    trials_per_session: int = 30  # main trials per session
    repeats_per_session: int = 5
    gold: tuple[GoldItem, ...] = ()
    gold_per_session: int = 0
    seed: int = 0


# --------------------------------------------------------------------------- keys & small helpers

Item = tuple[str, str, str | None]  # (content, cond_a, cond_b); cond_b is None for ratings

_DESIGNS: tuple[str, ...] = ("all_pairs", "vs_reference", "random_k")
_ROLES: tuple[str, ...] = ("reference", "baseline", "submission")


def item_key(content: str, cond_a: str, cond_b: str | None) -> tuple[str, str, str | None]:
    """Identity of a voted thing, independent of which condition is called A.

    Parameters
    ----------
    content, cond_a, cond_b
        The trial's content and conditions (``cond_b`` None for ratings).

    Returns
    -------
    tuple
        ``(content, first, second)`` with the pair sorted, so (A, B) and (B, A)
        are the same item; ratings keep ``(content, cond, None)``.
    """
    if cond_b is None:
        return (content, cond_a, None)
    lo, hi = sorted((cond_a, cond_b))
    return (content, lo, hi)


def references(spec: DesignSpec) -> list[str]:
    """The reference-role conditions, in ``spec.conditions`` order."""
    return [c for c in spec.conditions if spec.roles.get(c) == "reference"]


def rng_for(spec: DesignSpec, stream: str) -> random.Random:
    """A private RNG per purpose, so adding draws to one stream never shifts another.

    String seeds are hashed with SHA-512 by :mod:`random`, hence stable across
    processes and Python versions (unlike ``hash()``).
    """
    return random.Random(f"panelrank/{stream}/{spec.seed}")


def _all_pairs(conditions: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(itertools.combinations(conditions, 2))


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class SpecProblem:
    """One problem of a design: where it is reported and which fields it depends on.

    ``field`` and ``depends`` use the manifest's field names (``design.k``,
    ``gold[2]``, ``conditions`` …; ``votes_per_item`` stands for ``votes_per_pair`` or
    ``votes_per_stimulus``), so the manifest validator can place the problem and
    leave out one that is only a consequence of a problem it already reported.
    """

    field: str
    message: str
    depends: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field.startswith("gold[") else self.message


def validate_spec(spec: DesignSpec) -> list[str]:
    """List every problem that would make ``spec`` unplannable or ambiguous.

    Parameters
    ----------
    spec
        The design to check.

    Returns
    -------
    list of str
        Human-readable problems; empty when the spec is valid.
    """
    return [p.text for p in spec_problems(spec)]


def spec_problems(spec: DesignSpec) -> list[SpecProblem]:
    """Like :func:`validate_spec`, with the field each problem belongs to (see :class:`SpecProblem`)."""
    problems = [
        *_method_problems(spec),
        *_name_problems(spec),
        *_design_problems(spec),
        *_count_problems(spec),
        *_gold_problems(spec),
    ]
    # Whether the gold fits around the main trials needs the items and the session sizes,
    # which only an otherwise valid spec has.
    return problems or _gold_supply_problems(spec)


def _method_problems(spec: DesignSpec) -> list[SpecProblem]:
    method = METHODS.get(spec.method)
    if method is None:
        return [SpecProblem("method", f"unknown method {spec.method!r}; expected one of {', '.join(METHODS)}")]
    if spec.pairwise != method.pairwise:
        return [SpecProblem("method", f"method {spec.method!r} is {method.kind} but pairwise={spec.pairwise}")]
    return []


def _duplicates(names: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    return sorted({n for n in names if n in seen or seen.add(n)})


def _name_problems(spec: DesignSpec) -> list[SpecProblem]:
    problems = []
    for what, names in (("condition", spec.conditions), ("content", spec.contents)):
        if not names:
            problems.append(SpecProblem(f"{what}s", f"no {what}s given"))
        if dups := _duplicates(names):
            problems.append(SpecProblem(f"{what}s", f"duplicate {what} names: {', '.join(dups)}"))
    known = set(spec.conditions)
    if unknown := sorted(set(spec.roles) - known):
        problems.append(SpecProblem("conditions", f"roles name unknown conditions: {', '.join(unknown)}"))
    if bad := sorted(c for c, r in spec.roles.items() if r not in _ROLES):
        problems.append(SpecProblem(
            "conditions", f"unknown role for conditions {', '.join(bad)}; roles are {', '.join(_ROLES)}"))
    return problems


def _design_problems(spec: DesignSpec) -> list[SpecProblem]:
    method = METHODS.get(spec.method)
    if method is None:
        return []  # already reported; the rules below depend on the method's kind
    if method.pairwise:
        return _pairwise_design_problems(spec)
    return _rating_design_problems(spec)


def _pairwise_design_problems(spec: DesignSpec) -> list[SpecProblem]:
    n_cond = len(set(spec.conditions))
    if n_cond < 2:
        msg = f"pairwise method {spec.method!r} needs at least 2 conditions, got {n_cond}"
        return [SpecProblem("conditions", msg, ("method",))]
    if spec.design not in _DESIGNS:
        return [SpecProblem("design.pairs", f"unknown design {spec.design!r}; expected one of {', '.join(_DESIGNS)}")]
    refs = references(spec)
    if spec.design == "vs_reference" and not refs:
        return [SpecProblem("design.pairs", "design 'vs_reference' needs a condition with role 'reference'",
                            ("conditions",))]
    if spec.design == "vs_reference" and len(refs) == n_cond:
        return [SpecProblem("design.pairs", "design 'vs_reference' needs at least one non-reference condition",
                            ("conditions",))]
    if spec.design == "random_k":
        n_pairs = n_cond * (n_cond - 1) // 2
        if spec.k is None:
            return [SpecProblem("design.k", "design 'random_k' needs k (pairs per content)")]
        if not 1 <= spec.k <= n_pairs:
            msg = f"k={spec.k} must be between 1 and the number of condition pairs ({n_pairs})"
            return [SpecProblem("design.k", msg, ("conditions",))]
    return []


def _rating_design_problems(spec: DesignSpec) -> list[SpecProblem]:
    role = METHODS[spec.method].reference
    if role is None:
        return []
    # DMOS (a hidden reference) and the DCR presentation (a shown one) both need *the* reference of a content.
    refs = references(spec)
    if len(refs) != 1:
        msg = f"method {spec.method!r} needs exactly one 'reference' condition, got {len(refs)}"
        return [SpecProblem("conditions", msg, ("method",))]
    if role == "shown" and len(set(spec.conditions)) < 2:
        msg = f"method {spec.method!r} needs at least one non-reference condition"
        return [SpecProblem("conditions", msg, ("method",))]
    return []


def _count_problems(spec: DesignSpec) -> list[SpecProblem]:
    problems = []
    for name, low in (
        ("votes_per_item", 1),
        ("trials_per_session", 1),
        ("repeats_per_session", 0),
        ("gold_per_session", 0),
    ):
        if getattr(spec, name) < low:
            problems.append(SpecProblem(name, f"{name} must be at least {low}, got {getattr(spec, name)}"))
    n_gold = len(spec.gold)
    if n_gold and spec.gold_per_session > n_gold:
        # More per session than exist would put the same gold twice in one session.
        msg = f"gold_per_session={spec.gold_per_session} exceeds the {n_gold} gold items"
        problems.append(SpecProblem("gold_per_session", msg, ("gold",)))
    return problems


def _gold_problems(spec: DesignSpec) -> list[SpecProblem]:
    problems = []
    seen: set[tuple[str, str, str | None]] = set()
    for i, g in enumerate(spec.gold):
        problems += [SpecProblem(f"gold[{i}]", msg, depends) for msg, depends in _one_gold_problems(spec, g)]
        key = item_key(g.content, g.cond_a, g.cond_b)
        if key in seen:
            problems.append(SpecProblem(f"gold[{i}]", f"duplicates an earlier gold item {key}"))
        seen.add(key)
    return problems


def _one_gold_problems(spec: DesignSpec, g: GoldItem) -> list[tuple[str, tuple[str, ...]]]:
    """(message, fields it depends on) for each problem of one gold item."""
    problems: list[tuple[str, tuple[str, ...]]] = []
    if g.content not in spec.contents:
        problems.append((f"unknown content {g.content!r}", ("contents",)))
    named = [g.cond_a] if g.cond_b is None else [g.cond_a, g.cond_b]
    problems += [(f"unknown condition {c!r}", ("conditions",)) for c in named if c not in spec.conditions]
    if spec.pairwise and g.cond_b is None:
        problems.append(("a pairwise gold item needs cond_b", ()))
    if not spec.pairwise and g.cond_b is not None:
        problems.append(("a rating gold item must leave cond_b empty", ()))
    if g.cond_b is not None and g.cond_a == g.cond_b:
        problems.append((f"compares condition {g.cond_a!r} with itself", ()))
    if g.tolerance < 0:
        problems.append((f"tolerance must be >= 0, got {g.tolerance}", ()))
    method = METHODS.get(spec.method)
    if method is not None and not method.stored_ok(g.expected):
        problems.append((f"expected {g.expected} is off the {spec.method} scale {method.low}..{method.high}", ()))
    return problems


#: What a gold-supply problem follows from: when one of these is reported already, the manifest leaves it out.
_GOLD_SUPPLY_DEPENDS = ("gold", "method", "conditions", "contents", "design", "votes_per_item", "trials_per_session")


def _session_sizes(n_items: int, spec: DesignSpec) -> tuple[int, int, int]:
    """(sessions, main trials of a full session, main trials of the last one).

    As :func:`study_app.plan.make_plan` packs them.
    """
    size = min(spec.trials_per_session, n_items)
    total = n_items * spec.votes_per_item
    sessions = -(-total // size)
    return sessions, size, total - (sessions - 1) * size


def _gold_supply_problems(spec: DesignSpec) -> list[SpecProblem]:
    """Refuse a ``gold_per_session`` that some session could not get, however main trials are dealt.

    A gold item that is also a design item cannot be a session's gold where it is one of
    its main trials. With ``slack = len(gold) - gold_per_session`` a session may hold at most
    ``slack`` such items as main trials. Fixed session sizes allow that iff (1) a full session
    finds enough other items to fill up and (2) all showings of those items fit under the
    per-session limit; then such a dealing exists (Gale–Ryser for equal vote counts), and
    :func:`study_app.plan.make_plan` finds one by swapping main trials.
    """
    n = spec.gold_per_session
    if n < 1 or not spec.gold:
        return []
    keys = {item_key(*it) for it in _items(spec)}
    inside = sum(item_key(g.content, g.cond_a, g.cond_b) in keys for g in spec.gold)
    slack = len(spec.gold) - n
    if inside <= slack:
        return []
    msg = _forced_gold_message(spec, len(keys), inside) or _gold_room_message(spec, len(keys), inside)
    return [SpecProblem("gold_per_session", msg, _GOLD_SUPPLY_DEPENDS)] if msg else []


def _forced_gold_message(spec: DesignSpec, n_items: int, inside: int) -> str | None:
    """Condition (1): a full session has more main trials than there are design items that are not gold."""
    sessions, size, _ = _session_sizes(n_items, spec)
    forced = size - (n_items - inside)  # gold items among the main trials of every full session
    fit = len(spec.gold) - forced  # gold trials such a session can still take
    if fit >= spec.gold_per_session:
        return None
    head = f"gold_per_session={spec.gold_per_session} cannot be met: "
    tail = f"so at most {fit} gold trial(s) fit in it (a session never shows an item twice)"
    if size == n_items:
        who = "the only session" if sessions == 1 else f"each of the {sessions} sessions"
        return (f"{head}{who} shows all {n_items} design items (trials_per_session={spec.trials_per_session}), "
                f"so {inside} of the {len(spec.gold)} gold item(s) are always among its main trials and "
                f"{len(spec.gold) - inside} lie outside the design, {tail}")
    return (f"{head}a session has {size} main trials but only {n_items - inside} design items are not gold, "
            f"so {forced} of the {inside} gold items that are design items are among its main trials, {tail}")


def _gold_room_message(spec: DesignSpec, n_items: int, inside: int) -> str | None:
    """Condition (2): the main showings of gold items exceed what the sessions can hold and keep their gold."""
    sessions, size, last = _session_sizes(n_items, spec)
    slack = len(spec.gold) - spec.gold_per_session
    room = (sessions - 1) * min(slack, size) + min(slack, last)
    showings = inside * spec.votes_per_item
    if showings <= room:
        return None
    if slack == 0:  # the common case of one gold item that is also rated as a main trial
        return (f"gold_per_session={spec.gold_per_session} cannot be met: with {len(spec.gold)} gold item(s) every "
                f"session shows every gold item, so none may show one as a main trial, but {inside} of them are "
                f"design items with {spec.votes_per_item} main trial(s) each; add gold items (more than "
                "gold_per_session, or ones that are not design items)")
    return (f"gold_per_session={spec.gold_per_session} cannot be met: {inside} of the {len(spec.gold)} gold items "
            f"are also design items, shown as main trials {showings} times ({spec.votes_per_item} votes each), "
            f"but a session keeps {spec.gold_per_session} gold trial(s) free of its main trials only if it holds "
            f"at most {slack} of them, {room} over the {sessions} sessions; lower gold_per_session or add gold "
            "items that are not design items")


def _raise_if_invalid(spec: DesignSpec) -> None:
    if problems := validate_spec(spec):
        raise ValueError("invalid study design:\n- " + "\n- ".join(problems))


# --------------------------------------------------------------------------- items


def design_items(spec: DesignSpec) -> list[Item]:
    """The distinct things to be voted on, before repetition.

    Parameters
    ----------
    spec
        A valid design.

    Returns
    -------
    list of (content, cond_a, cond_b)
        Content-major. Pairwise: ``cond_a`` precedes ``cond_b`` in
        ``spec.conditions`` (for ``vs_reference`` ``cond_a`` is the reference).
        Ratings: ``cond_b`` is None; a shown reference (``dcr5``) is left out (it is
        the trial's ``reference``), a hidden one (``acr-hr``) is rated like any condition.

    Raises
    ------
    ValueError
        If :func:`validate_spec` reports problems.
    """
    _raise_if_invalid(spec)
    return _items(spec)


def _items(spec: DesignSpec) -> list[Item]:
    """:func:`design_items` without validation (validation itself needs the items)."""
    if not spec.pairwise:
        return _rating_items(spec)
    if spec.design == "all_pairs":
        pairs = _all_pairs(spec.conditions)
        return [(c, a, b) for c in spec.contents for a, b in pairs]
    if spec.design == "vs_reference":
        refs = references(spec)
        pairs = [(r, c) for r in refs for c in spec.conditions if c not in refs]
        return [(c, a, b) for c in spec.contents for a, b in pairs]
    return _random_k_items(spec)


def _rating_items(spec: DesignSpec) -> list[Item]:
    skip = set(references(spec)) if METHODS[spec.method].reference == "shown" else set()
    conds = [c for c in spec.conditions if c not in skip]
    return [(content, cond, None) for content in spec.contents for cond in conds]


def _random_k_items(spec: DesignSpec) -> list[Item]:
    """``k`` pairs per content, the least-used pairs so far first.

    Taking the ``k`` least-used pairs keeps every pair's use count within one of
    every other's (the counts only ever occupy two adjacent levels). Among pairs
    of equal use, prefer pairs whose conditions this content has not shown yet,
    so one content spreads over many conditions; remaining ties are random.
    """
    assert spec.k is not None  # guaranteed by validation
    rng = rng_for(spec, "items")
    pairs = _all_pairs(spec.conditions)
    used = [0] * len(pairs)
    items: list[Item] = []
    for content in spec.contents:
        chosen = _least_used_pairs(pairs, used, spec.k, rng)
        for p in chosen:
            used[p] += 1
        items += [(content, *pairs[p]) for p in sorted(chosen)]
    return items


def _least_used_pairs(pairs: list[tuple[str, str]], used: list[int], k: int, rng: random.Random) -> list[int]:
    order = list(range(len(pairs)))
    rng.shuffle(order)
    order.sort(key=used.__getitem__)  # stable: equal use keeps the random order
    level = used[order[k - 1]]  # the use level where the cut falls: a free choice
    chosen = [p for p in order if used[p] < level]
    tied = [p for p in order if used[p] == level]
    shown: dict[str, int] = {}
    for a, b in (pairs[p] for p in chosen):
        shown[a] = shown.get(a, 0) + 1
        shown[b] = shown.get(b, 0) + 1
    while len(chosen) < k:
        p = tied.pop(_least_shown(tied, pairs, shown))
        chosen.append(p)
        for c in pairs[p]:
            shown[c] = shown.get(c, 0) + 1
    return chosen


def _least_shown(tied: list[int], pairs: list[tuple[str, str]], shown: dict[str, int]) -> int:
    """Index into ``tied`` of the first pair whose conditions were shown least (random order ⇒ random tie)."""
    best, best_score = 0, None
    for i, p in enumerate(tied):
        a, b = pairs[p]
        score = shown.get(a, 0) + shown.get(b, 0)
        if score == 0:
            return i  # cannot do better; stop scanning
        if best_score is None or score < best_score:
            best, best_score = i, score
    return best
