"""Property and example tests for the study design and its plan (study_app.design, study_app.plan)."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import Counter, defaultdict
from itertools import combinations, pairwise
from pathlib import Path

import pytest
import yaml
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import methods
from study_app.design import DesignSpec, GoldItem, design_items, item_key, spec_problems, validate_spec
from study_app.manifest import ManifestError, load
from study_app.plan import REPEAT_GAP, Plan, make_plan, plan_summary

METHODS = ("pc5", "2afc", "ccr7", "acr5", "acr-hr", "dcr5", "slider100")
DESIGNS = ("all_pairs", "vs_reference", "random_k")
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- strategies


def _scale_values(method: str) -> list[int]:
    s = methods.METHODS[method]
    return [v for v in range(s.low, s.high + 1) if s.allows_zero or v != 0]


@st.composite
def _roles(draw, conds: tuple[str, ...], method: str, design: str) -> dict[str, str]:
    """Roles that satisfy the method/design: exactly one reference where one is required."""
    if method in ("acr-hr", "dcr5"):
        n_ref = 1
    elif design == "vs_reference":
        n_ref = draw(st.integers(1, len(conds) - 1))
    else:
        n_ref = draw(st.integers(0, len(conds) - 1))
    refs = draw(st.permutations(conds))[:n_ref]
    others = st.sampled_from(["baseline", "submission"])
    return {c: "reference" if c in refs else draw(others) for c in conds}


@st.composite
def _gold(draw, method: str, conds: tuple[str, ...], contents: tuple[str, ...]) -> tuple[GoldItem, ...]:
    pairwise = methods.METHODS[method].kind == "pairwise"
    # A pairwise gold item compares two different conditions; a rating one names one.
    names = st.lists(st.sampled_from(conds), min_size=2, max_size=2, unique=True) if pairwise else \
        st.sampled_from(conds).map(lambda c: [c, None])
    one = st.builds(
        lambda content, ab, expected, tolerance: GoldItem(content, ab[0], ab[1], expected, tolerance),
        content=st.sampled_from(contents),
        ab=names,
        expected=st.sampled_from(_scale_values(method)),
        tolerance=st.integers(0, 2),
    )
    key = lambda g: item_key(g.content, g.cond_a, g.cond_b)  # noqa: E731
    return tuple(draw(st.lists(one, max_size=3, unique_by=key)))


@st.composite
def specs(draw) -> DesignSpec:
    """Random valid specs over every method, design and size the brief lists."""
    method = draw(st.sampled_from(METHODS))
    pairwise = methods.METHODS[method].kind == "pairwise"
    conds = tuple(f"c{i}" for i in range(draw(st.integers(2, 6))))
    contents = tuple(f"v{i}" for i in range(draw(st.integers(1, 8))))
    design = draw(st.sampled_from(DESIGNS)) if pairwise else "all_pairs"
    n_pairs = len(conds) * (len(conds) - 1) // 2
    gold = draw(_gold(method, conds, contents))
    spec = DesignSpec(
        method=method,
        conditions=conds,
        roles=draw(_roles(conds, method, design)),
        contents=contents,
        pairwise=pairwise,
        design=design,
        k=draw(st.integers(1, n_pairs)) if design == "random_k" else None,
        votes_per_item=draw(st.integers(1, 4)),
        trials_per_session=draw(st.integers(1, 40)),
        repeats_per_session=draw(st.integers(0, 6)),
        gold=gold,
        gold_per_session=draw(st.integers(0, len(gold))),
        seed=draw(st.integers(0, 2**32)),
    )
    return _deliverable(spec)


def _deliverable(spec: DesignSpec) -> DesignSpec:
    """``spec`` with ``gold_per_session`` lowered until every session can get it (0 always can)."""
    while spec.gold_per_session and validate_spec(spec):
        spec = dataclasses.replace(spec, gold_per_session=spec.gold_per_session - 1)
    return spec


# --------------------------------------------------------------------------- helpers


def _key(t) -> tuple:
    return item_key(t.content, t.cond_a, t.cond_b)


def _main(plan: Plan):
    return [t for s in plan.sessions for t in s.trials if t.kind == "main"]


def _ref(spec: DesignSpec) -> str:
    return next(c for c in spec.conditions if spec.roles.get(c) == "reference")


# --------------------------------------------------------------------------- properties


@PROPS
@given(specs())
def test_generated_specs_are_valid_and_items_follow_the_design(spec):
    assert validate_spec(spec) == []
    items = design_items(spec)
    assert len({item_key(*it) for it in items}) == len(items)
    order = {c: i for i, c in enumerate(spec.conditions)}
    refs = [c for c in spec.conditions if spec.roles.get(c) == "reference"]
    per_content = Counter(c for c, _, _ in items)
    if not spec.pairwise:
        assert all(b is None for _, _, b in items)
        rated = {a for _, a, _ in items}
        if spec.method == "dcr5":
            assert rated == set(spec.conditions) - set(refs)
        else:  # acr-hr keeps the hidden reference; plain rating methods rate everything
            assert rated == set(spec.conditions)
        return
    n = len(spec.conditions)
    if spec.design == "all_pairs":
        assert all(order[a] < order[b] for _, a, b in items)
        assert set(per_content.values()) == {n * (n - 1) // 2}
    elif spec.design == "vs_reference":
        assert all(a in refs and b not in refs for _, a, b in items)
        assert set(per_content.values()) == {len(refs) * (n - len(refs))}
    else:
        assert all(order[a] < order[b] for _, a, b in items)
        assert set(per_content.values()) == {spec.k}
        use = Counter((a, b) for _, a, b in items)
        all_use = [use.get(p, 0) for p in combinations(spec.conditions, 2)]
        assert max(all_use) - min(all_use) <= 1


@PROPS
@given(specs())
def test_every_item_reaches_its_vote_target(spec):
    plan = make_plan(spec)
    assert plan.items == tuple(design_items(spec))
    main = _main(plan)
    # Orientation is kept: a main trial is literally one of the items.
    assert Counter((t.content, t.cond_a, t.cond_b) for t in main) == {it: spec.votes_per_item for it in plan.items}


@PROPS
@given(specs())
def test_left_right_is_balanced_per_item(spec):
    plan = make_plan(spec)
    trials = [t for s in plan.sessions for t in s.trials]
    if not spec.pairwise:
        assert all(t.a_left for t in trials)
        return
    sides: dict[tuple, Counter] = defaultdict(Counter)
    for t in _main(plan):
        sides[_key(t)][t.a_left] += 1
    assert all(abs(c[True] - c[False]) <= 1 for c in sides.values())


@PROPS
@given(specs())
def test_sessions_are_packed_without_duplicates(spec):
    plan = make_plan(spec)
    size = min(spec.trials_per_session, len(plan.items))
    n_main = [sum(t.kind == "main" for t in s.trials) for s in plan.sessions]
    assert len(plan.sessions) == math.ceil(len(plan.items) * spec.votes_per_item / size)
    assert all(n == size for n in n_main[:-1])
    assert 1 <= n_main[-1] <= size
    for s in plan.sessions:
        shown = [_key(t) for t in s.trials if t.kind != "repeat"]
        assert len(shown) == len(set(shown))


@PROPS
@given(specs())
def test_repeats_copy_an_earlier_main_trial_with_sides_swapped(spec):
    plan = make_plan(spec)
    for s in plan.sessions:
        repeats = [t for t in s.trials if t.kind == "repeat"]
        n_main = sum(t.kind == "main" for t in s.trials)
        assert len(repeats) <= spec.repeats_per_session
        if n_main >= spec.repeats_per_session + REPEAT_GAP - 1:
            assert len(repeats) == spec.repeats_per_session
        assert len({t.repeat_of for t in repeats}) == len(repeats)
        for t in s.trials:
            assert (t.repeat_of is not None) == (t.kind == "repeat")
        for r in repeats:
            orig = s.trials[r.repeat_of]
            assert orig.kind == "main"
            assert r.position - orig.position >= REPEAT_GAP
            assert (r.content, r.cond_a, r.cond_b, r.reference) == (
                orig.content,
                orig.cond_a,
                orig.cond_b,
                orig.reference,
            )
            assert r.a_left == (not orig.a_left if spec.pairwise else True)
            assert r.gold_expected is None


@PROPS
@given(specs())
def test_gold_is_dealt_round_robin(spec):
    plan = make_plan(spec)
    gold_keys = [item_key(g.content, g.cond_a, g.cond_b) for g in spec.gold]
    by_key = dict(zip(gold_keys, spec.gold, strict=True))
    item_keys = {item_key(*it) for it in plan.items}
    want = spec.gold_per_session if spec.gold else 0
    sides: dict[tuple, list[bool]] = defaultdict(list)
    for s in plan.sessions:
        gold = [t for t in s.trials if t.kind == "gold"]
        main_keys = {_key(t) for t in s.trials if t.kind == "main"}
        assert len(gold) == want
        assert not {_key(t) for t in gold} & main_keys
        for t in gold:
            g = by_key[_key(t)]
            assert (t.content, t.cond_a, t.cond_b) == (g.content, g.cond_a, g.cond_b)
            assert (t.gold_expected, t.gold_tolerance) == (g.expected, g.tolerance)
            sides[_key(t)].append(t.a_left)
        assert all(t.gold_expected is None for t in s.trials if t.kind != "gold")
    for shown in sides.values():
        if spec.pairwise:  # alternates from showing to showing
            assert all(a != b for a, b in pairwise(shown))
        else:
            assert all(shown)
    if not set(gold_keys) & item_keys:  # no collisions possible: strict rotation
        for s in plan.sessions:
            got = {_key(t) for t in s.trials if t.kind == "gold"}
            start = s.index * want
            assert got == {gold_keys[(start + j) % len(gold_keys)] for j in range(want)}


@PROPS
@given(specs())
def test_positions_and_indexes_are_contiguous(spec):
    plan = make_plan(spec)
    assert [s.index for s in plan.sessions] == list(range(len(plan.sessions)))
    for s in plan.sessions:
        assert [t.position for t in s.trials] == list(range(len(s.trials)))
    ref = _ref(spec) if spec.method == "dcr5" else None
    assert all(t.reference == ref for s in plan.sessions for t in s.trials)
    summary = plan_summary(plan)
    assert summary["main"] == len(plan.items) * spec.votes_per_item
    assert summary["sessions"] == len(plan.sessions)
    assert summary["trials"] == summary["main"] + summary["repeat"] + summary["gold"]


@settings(max_examples=60, deadline=None)
@given(specs())
def test_same_seed_same_plan(spec):
    assert make_plan(spec) == make_plan(spec)


# --------------------------------------------------------------------------- examples


def _spec(**kw) -> DesignSpec:
    conds = kw.pop("conditions", ("src", "base", "t1", "t2", "t3"))
    base = dict(
        method="pc5",
        conditions=conds,
        roles={c: "reference" if c == "src" else "submission" for c in conds},
        contents=tuple(f"v{i}" for i in range(6)),
        pairwise=True,
        votes_per_item=3,
        trials_per_session=12,
        repeats_per_session=3,
        seed=1,
    )
    base.update(kw)
    return DesignSpec(**base)


def test_reproducible_and_seed_sensitive():
    spec = _spec(design="random_k", k=4)
    assert make_plan(spec) == make_plan(_spec(design="random_k", k=4))
    other = make_plan(_spec(design="random_k", k=4, seed=2))
    assert other.sessions != make_plan(spec).sessions
    assert other.items != make_plan(spec).items


def test_dcr5_shows_the_reference_but_does_not_rate_it():
    spec = _spec(method="dcr5", pairwise=False, gold=(GoldItem("v0", "src", None, 5),), gold_per_session=1)
    plan = make_plan(spec)
    assert all(cond != "src" for _, cond, _ in plan.items)
    assert len(plan.items) == 6 * 4
    trials = [t for s in plan.sessions for t in s.trials]
    assert {t.reference for t in trials} == {"src"}
    assert all(t.cond_b is None for t in trials)


def test_acr_hr_rates_the_hidden_reference():
    plan = make_plan(_spec(method="acr-hr", pairwise=False))
    assert {cond for _, cond, _ in plan.items} == {"src", "base", "t1", "t2", "t3"}
    assert all(t.reference is None for s in plan.sessions for t in s.trials)


def test_random_k_uses_every_pair_evenly():
    conds = tuple(f"c{i}" for i in range(12))
    spec = _spec(conditions=conds, contents=tuple(f"v{i}" for i in range(200)), design="random_k", k=6)
    use = Counter((a, b) for _, a, b in design_items(spec))
    counts = [use.get(p, 0) for p in combinations(conds, 2)]
    assert sum(counts) == 200 * 6
    assert max(counts) - min(counts) <= 1


def test_vs_reference_pairs_each_condition_with_the_reference():
    items = design_items(_spec(design="vs_reference"))
    assert {(a, b) for _, a, b in items} == {("src", c) for c in ("base", "t1", "t2", "t3")}


def test_sessions_shrink_instead_of_duplicating():
    spec = _spec(conditions=("a", "b"), roles={}, contents=("v0",), votes_per_item=4, trials_per_session=30)
    plan = make_plan(spec)
    assert [sum(t.kind == "main" for t in s.trials) for s in plan.sessions] == [1, 1, 1, 1]
    assert plan_summary(plan)["repeat"] == 0  # one trial per session: no room for the gap
    assert [t.a_left for t in _main(plan)].count(True) == 2


def test_gold_colliding_with_a_main_item_is_skipped_in_that_session():
    gold = (GoldItem("v0", "base", "src", -2), GoldItem("v1", "src", "t1", 2))
    plan = make_plan(_spec(gold=gold, gold_per_session=1, trials_per_session=5))
    for s in plan.sessions:
        keys = [_key(t) for t in s.trials if t.kind != "repeat"]
        assert len(keys) == len(set(keys))
        assert sum(t.kind == "gold" for t in s.trials) == 1


def test_validate_spec_lists_every_problem():
    spec = _spec(
        design="vs_reference",
        roles={"ghost": "reference"},
        votes_per_item=0,
        trials_per_session=0,
        gold=(GoldItem("nope", "src", "zzz", 3), GoldItem("v0", "src", None, 1)),
        gold_per_session=3,
    )
    problems = validate_spec(spec)
    text = "\n".join(problems)
    for needle in (
        "unknown conditions: ghost",
        "'vs_reference' needs a condition with role 'reference'",
        "votes_per_item must be at least 1",
        "trials_per_session must be at least 1",
        "gold_per_session=3 exceeds",
        "gold[0]: unknown content 'nope'",
        "gold[0]: unknown condition 'zzz'",
        "gold[0]: expected 3 is off the pc5 scale",
        "gold[1]: a pairwise gold item needs cond_b",
    ):
        assert needle in text, needle
    with pytest.raises(ValueError, match="votes_per_item"):
        make_plan(spec)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        (dict(design="random_k"), "needs k"),
        (dict(design="random_k", k=11), "k=11 must be between 1 and"),
        (dict(method="2afc", gold=(GoldItem("v0", "src", "t1", 0),), gold_per_session=1), "off the 2afc"),
        (dict(method="acr5"), "is ratings but pairwise=True"),
        (dict(method="dcr5", pairwise=False, roles={}), "exactly one 'reference'"),
        (dict(method="mos9"), "unknown method"),
        (dict(repeats_per_session=-1), "repeats_per_session must be at least 0"),
    ],
)
def test_validate_spec_examples(kw, needle):
    problems = validate_spec(_spec(**kw))
    assert any(needle in p for p in problems), problems
    with pytest.raises(ValueError):
        design_items(_spec(**kw))


def test_real_scale_plan_is_fast():
    """The 2025 challenge: 12 conditions, 3,000 contents, 6 pairs each, 15 votes ≈ 270,000 trials."""
    conds = tuple(f"c{i:02d}" for i in range(12))
    spec = _spec(
        conditions=conds,
        roles={"c00": "reference", "c01": "baseline"},
        contents=tuple(f"v{i:04d}" for i in range(3000)),
        design="random_k",
        k=6,
        votes_per_item=15,
        trials_per_session=30,
        repeats_per_session=5,
        gold=(GoldItem("v0000", "c00", "c01", 2), GoldItem("v0001", "c01", "c00", -2)),
        gold_per_session=1,
    )
    start = time.perf_counter()
    plan = make_plan(spec)
    elapsed = time.perf_counter() - start
    summary = plan_summary(plan)
    assert summary["main"] == 270_000
    assert summary["sessions"] == 9_000
    assert summary["repeat"] == 5 * 9_000
    assert elapsed < 20  # a few seconds in practice; generous for slow CI machines


# --------------------------------------------------------------------------- gold: delivered or refused


def _assert_gold_delivered(plan: Plan) -> None:
    """Every session has exactly ``gold_per_session`` gold trials, none also one of its main items."""
    spec = plan.spec
    for s in plan.sessions:
        gold = [_key(t) for t in s.trials if t.kind == "gold"]
        main = {_key(t) for t in s.trials if t.kind == "main"}
        assert len(gold) == spec.gold_per_session, s.index
        assert len(set(gold)) == len(gold) and not set(gold) & main, s.index


def _assert_votes_and_sides_kept(plan: Plan) -> None:
    main = _main(plan)
    assert Counter((t.content, t.cond_a, t.cond_b) for t in main) == {it: plan.spec.votes_per_item for it in plan.items}
    sides: dict[tuple, Counter] = defaultdict(Counter)
    for t in main:
        sides[_key(t)][t.a_left] += 1
    assert all(abs(c[True] - c[False]) <= 1 for c in sides.values()) if plan.spec.pairwise else all(
        t.a_left for t in main)


def test_demo_manifest_gives_every_session_its_gold(demo_manifest_path: Path) -> None:
    """Both demo gold items are design items; skipping them where they were main trials left 3 of 30 without gold."""
    spec = load(demo_manifest_path, probe_media=False).spec
    plan = make_plan(spec)
    assert len(plan.sessions) == 30 and spec.gold_per_session == 1
    _assert_gold_delivered(plan)
    _assert_votes_and_sides_kept(plan)


def _sweep_spec(rng: random.Random) -> DesignSpec:
    """A small valid spec whose gold may lie inside or outside the design and may not fit."""
    method = rng.choice(["pc5", "2afc", "acr5", "dcr5", "acr-hr"])
    pairwise = methods.METHODS[method].kind == "pairwise"
    conds = tuple(f"c{i}" for i in range(rng.randint(2, 5)))
    contents = tuple(f"v{i}" for i in range(rng.randint(1, 4)))
    design = rng.choice(DESIGNS) if pairwise else "all_pairs"
    n_ref = 1 if method in ("dcr5", "acr-hr") or design == "vs_reference" else rng.randint(0, 1)
    n_pairs = len(conds) * (len(conds) - 1) // 2
    # Every pair / condition of a content: vs_reference, random_k and dcr5 leave some out of the design.
    shown = [(a, b) for a, b in combinations(conds, 2)] if pairwise else [(c, None) for c in conds]
    candidates = [(v, a, b) for v in contents for a, b in shown]
    gold = tuple(GoldItem(v, a, b, expected=1) for v, a, b in rng.sample(candidates, min(len(candidates),
                                                                                        rng.randint(1, 4))))
    return DesignSpec(
        method=method, conditions=conds, roles={c: "reference" if i < n_ref else "submission"
                                                for i, c in enumerate(conds)},
        contents=contents, pairwise=pairwise, design=design,
        k=rng.randint(1, n_pairs) if design == "random_k" else None,
        votes_per_item=rng.randint(1, 4), trials_per_session=rng.randint(1, 20),
        repeats_per_session=rng.randint(0, 3), gold=gold, gold_per_session=rng.choice([1, rng.randint(1, len(gold))]),
        seed=rng.randrange(2**31),
    )


SWEEP = 5000


def test_gold_sweep_is_delivered_or_refused() -> None:
    """Small specs over many seeds: refused on gold_per_session, or exactly that many gold in every session."""
    seen = Counter()
    for seed in range(SWEEP):
        spec = _sweep_spec(random.Random(seed))
        if problems := spec_problems(spec):
            assert [p.field for p in problems] == ["gold_per_session"], problems
            assert f"gold_per_session={spec.gold_per_session} cannot be met" in problems[0].message
            seen["refused"] += 1
            continue
        plan = make_plan(spec)
        _assert_gold_delivered(plan)
        _assert_votes_and_sides_kept(plan)
        items = {item_key(*it) for it in plan.items}
        inside = sum(item_key(g.content, g.cond_a, g.cond_b) in items for g in spec.gold)
        seen["planned, gold in the design" if inside else "planned, gold outside the design"] += 1
    # The sweep covers each outcome broadly (the numbers are fixed by the seeds).
    assert min(seen.values()) > 150 and len(seen) == 3, seen


def test_gold_fits_when_the_one_trial_last_session_is_the_only_room() -> None:
    """9 main showings of gold items, room for exactly 9 (2 in each full session, 1 in the last, one-trial
    session); the last session's only item is in the over-full session too, so the repair goes through a third."""
    spec = DesignSpec(
        method="acr-hr", conditions=("c0", "c1", "c2", "c3", "c4"),
        roles={"c0": "reference", **{f"c{i}": "submission" for i in range(1, 5)}},
        contents=("v0", "v1", "v2"), pairwise=False, votes_per_item=3, trials_per_session=11, repeats_per_session=0,
        gold=(GoldItem("v2", "c4", None, 1), GoldItem("v0", "c0", None, 1), GoldItem("v1", "c2", None, 1)),
        gold_per_session=1, seed=349640165,
    )
    assert validate_spec(spec) == []
    plan = make_plan(spec)
    assert [sum(t.kind == "main" for t in s.trials) for s in plan.sessions] == [11, 11, 11, 11, 1]
    _assert_gold_delivered(plan)
    _assert_votes_and_sides_kept(plan)


def _gold_problems(spec: DesignSpec) -> list[str]:
    return [p.message for p in spec_problems(spec) if p.field == "gold_per_session"]


def test_gold_in_a_session_that_holds_every_item_is_refused() -> None:
    three = dict(conditions=("src", "base", "t1"), contents=("v0",), trials_per_session=30, votes_per_item=2)
    inside = GoldItem("v0", "src", "base", 2)
    assert _gold_problems(_spec(**three, gold=(inside,), gold_per_session=1)) == [
        "gold_per_session=1 cannot be met: each of the 2 sessions shows all 3 design items (trials_per_session=30), "
        "so 1 of the 1 gold item(s) are always among its main trials and 0 lie outside the design, so at most 0 gold "
        "trial(s) fit in it (a session never shows an item twice)"
    ]
    single = _gold_problems(_spec(**{**three, "votes_per_item": 1}, gold=(inside,), gold_per_session=1))
    assert len(single) == 1 and "the only session shows all 3 design items" in single[0]
    # A gold pair that vs_reference does not ask about can be shown to every session.
    outside = GoldItem("v0", "base", "t1", 1)
    ok = _spec(**three, design="vs_reference", gold=(inside, outside), gold_per_session=1)
    assert validate_spec(ok) == []
    _assert_gold_delivered(make_plan(ok))
    two = _gold_problems(dataclasses.replace(ok, gold_per_session=2))
    assert len(two) == 1 and "at most 1 gold trial(s) fit" in two[0]


def test_gold_showings_beyond_the_sessions_room_are_refused() -> None:
    """Two gold pairs of 6 design items, 2 votes each: 4 main showings, a session may hold 1 of them."""
    four = dict(conditions=("a", "b", "c", "d"), roles={}, contents=("v0",), votes_per_item=2,
                gold=(GoldItem("v0", "a", "b", 1), GoldItem("v0", "c", "d", 1)), gold_per_session=1)
    tight = _spec(**four, trials_per_session=3)  # 4 sessions: room for exactly 4
    assert validate_spec(tight) == []
    _assert_gold_delivered(make_plan(tight))
    assert _gold_problems(_spec(**four, trials_per_session=4)) == [  # 3 sessions: room for 3
        "gold_per_session=1 cannot be met: 2 of the 2 gold items are also design items, shown as main trials 4 times "
        "(2 votes each), but a session keeps 1 gold trial(s) free of its main trials only if it holds at most 1 of "
        "them, 3 over the 3 sessions; lower gold_per_session or add gold items that are not design items"
    ]
    every = _gold_problems(dataclasses.replace(tight, gold_per_session=2))  # both gold in every session
    assert every == [
        "gold_per_session=2 cannot be met: with 2 gold item(s) every session shows every gold item, so none may show "
        "one as a main trial, but 2 of them are design items with 2 main trial(s) each; add gold items (more than "
        "gold_per_session, or ones that are not design items)"
    ]


def _refused_demo(raw: dict, tmp_path: Path) -> Path:
    raw["trials_per_session"] = 60  # the demo has 60 items, and both gold items are among them
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_manifest_validation_lists_the_gold_refusal(app: Flask, demo_manifest_path: Path, tmp_path: Path) -> None:
    path = _refused_demo(yaml.safe_load(demo_manifest_path.read_text()), tmp_path)
    with pytest.raises(ManifestError) as err:
        load(path)
    assert err.value.problems == [
        "manifest.yaml: gold_per_session: gold_per_session=1 cannot be met: each of the 8 sessions shows all 60 "
        "design items (trials_per_session=60), so 2 of the 2 gold item(s) are always among its main trials and 0 lie "
        "outside the design, so at most 0 gold trial(s) fit in it (a session never shows an item twice)"
    ]
    result = app.test_cli_runner().invoke(args=["create-study", str(path)])
    assert result.exit_code == 1
    assert "1 problem(s)" in result.output and "nothing was created" in result.output
    assert "  - manifest.yaml: gold_per_session: gold_per_session=1 cannot be met: each of the 8 sessions" in (
        result.output)


def test_gold_refusal_is_not_a_consequence_of_a_reported_problem(demo_manifest_path: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw["gold"][0]["colour"] = "red"  # the entry is rejected: what is left of the gold is not the organizer's
    with pytest.raises(ManifestError) as err:
        load(_refused_demo(raw, tmp_path))
    assert len(err.value.problems) == 1 and "gold[0]: unknown field(s) colour" in err.value.problems[0]
