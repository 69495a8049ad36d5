"""Turn a scorer into the tie-breaker that the ranking accepts.

The ranking module calls a tie-breaker with the conditions of one group of
statistically tied conditions and orders them by the returned numbers (higher =
better). It also reads ``.name`` and ``.version`` to say in ``ranking.csv`` which
scorer separated which adjacent pair::

    tb = make_tiebreaker(get_scorer("handcrafted"), stimuli, cache=ScoreCache("cache/"))
    tb(["teamA", "teamB", "teamC"])   # {"teamA": 0.54, "teamB": 0.47, "teamC": 0.49}

Objective score of condition ``c`` in group ``G`` (PROTOCOL.md §4): the mean, over the
other conditions ``d`` in ``G``, of the mean over shared contents of
``p_sym(stimulus(content, c), stimulus(content, d))``. It depends only on the group,
never on the order the conditions are listed in. Alternatively, with ``s_obj=``, the
condition's challenge score S_obj is returned as is.

A :class:`~analysis.objective.scorers.head.CrossFitScorer` is asked ``for_pair(c, d)`` so each
pair is judged by a head that never saw votes on that pair.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .base import Scorer, pair_key
from .cache import ScoreCache, score_pairs, score_stimuli
from .inputs import stimuli_frame
from .scorer_model import resolve_scorer
from .scorers.cached import CachedScorer


@dataclass
class TieBreaker:
    """Callable ``(conditions) -> {condition: objective score}``; build with :func:`make_tiebreaker`.

    Attributes
    ----------
    name, version
        Scorer identity as reported in ``ranking.csv``.
    """

    name: str
    version: str
    scorer: Scorer | None
    stimuli: pd.DataFrame
    s_obj: Mapping[str, float] | None = None
    cache: ScoreCache | None = None
    workers: int = 1
    _p: dict[tuple[str, str], list[tuple[str, float]]] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, conditions: Sequence[str]) -> dict[str, float]:
        """Objective score of each condition within this group (higher = better).

        A condition that shares no content with any other in the group has nothing to
        be compared on and gets the neutral 0.5 (what p_sym says for "no preference"),
        never NaN: the ranking sorts on these values and NaN has no order.
        """
        conds = [str(c) for c in conditions]
        if len(set(conds)) != len(conds):
            raise ValueError(f"conditions repeat in {conds}")
        if self.s_obj is not None:
            missing = [c for c in conds if c not in self.s_obj]
            if missing:
                raise ValueError(f"no S_obj for condition(s) {missing}")
            return {c: float(self.s_obj[c]) for c in conds}
        if len(conds) == 1:
            return {conds[0]: 0.5}
        self._score_missing(conds)
        out: dict[str, float] = {}
        for c in conds:
            per_opponent = []
            for d in conds:
                if d == c:
                    continue
                values = [p for _, p in self._p[pair_key(c, d)]]
                if values:
                    mean = float(np.mean(values))
                    # Stored as p_sym(first, second) of the canonical key; flip for c second.
                    per_opponent.append(mean if pair_key(c, d)[0] == c else 1.0 - mean)
            out[c] = float(np.mean(per_opponent)) if per_opponent else 0.5
        return out

    def _score_missing(self, conds: Sequence[str]) -> None:
        assert self.scorer is not None
        paths = {(r.content, r.condition): r.path for r in self.stimuli.itertuples(index=False)}
        by_cond: dict[str, set[str]] = {}
        for content, cond in paths:
            by_cond.setdefault(cond, set()).add(content)
        todo = [k for k in (pair_key(a, b) for a, b in combinations(conds, 2)) if k not in self._p]
        plain: list[tuple[tuple[str, str], str]] = []
        for key in todo:
            x, y = key
            contents = sorted(by_cond.get(x, set()) & by_cond.get(y, set()))
            if hasattr(self.scorer, "for_pair"):
                # Cross-fitted heads: one scorer per condition pair.
                pair_scorer = self.scorer.for_pair(x, y)
                scored = score_pairs(
                    pair_scorer,
                    [(paths[(c, x)], paths[(c, y)]) for c in contents],
                    cache=self.cache,
                    workers=self.workers,
                )
                self._p[key] = list(zip(contents, scored["p"].astype(float), strict=True))
            else:
                plain.extend((key, c) for c in contents)
        # One batch for the whole group: each stimulus is analysed once. Results are
        # recorded only after the batch succeeded, so a failure leaves nothing half-done.
        found: dict[tuple[str, str], list[tuple[str, float]]] = {
            k: [] for k in todo if not hasattr(self.scorer, "for_pair")
        }
        if plain:
            scored = score_pairs(
                self.scorer,
                [(paths[(c, x)], paths[(c, y)]) for (x, y), c in plain],
                cache=self.cache,
                workers=self.workers,
            )
            for (key, content), p in zip(plain, scored["p"].astype(float), strict=True):
                found[key].append((content, float(p)))
        self._p.update(found)

    def pair_table(self) -> pd.DataFrame:
        """Every p_sym computed so far: ``content, cond_a, cond_b, p`` (for reports).

        Returns
        -------
        DataFrame
            One row per content and canonical condition pair (``cond_a < cond_b``), with
            ``p = p_sym(cond_a, cond_b)``.
        """
        rows = [(content, a, b, p) for (a, b), values in sorted(self._p.items()) for content, p in values]
        return pd.DataFrame(rows, columns=["content", "cond_a", "cond_b", "p"])


def make_tiebreaker(
    scorer: Scorer | None,
    stimuli: pd.DataFrame | Mapping[tuple[str, str], Any] | None = None,
    *,
    s_obj: Mapping[str, float] | None = None,
    cache: ScoreCache | None = None,
    workers: int = 1,
    name: str | None = None,
    version: str | None = None,
) -> TieBreaker:
    """Build the tie-breaker callable for the ranking.

    Parameters
    ----------
    scorer
        Any scorer (or a :class:`~analysis.objective.scorers.head.CrossFitScorer`). May be None
        when ``s_obj`` is given.
    stimuli
        ``content, condition, path`` frame or ``{(content, condition): path}``.
    s_obj
        ``{condition: S_obj}``; when given, these are the objective scores.
    cache
        A :class:`~analysis.objective.cache.ScoreCache` so reruns score nothing twice.
    workers
        Parallel workers for scoring.
    name, version
        Override the identity reported in ``ranking.csv``.

    Returns
    -------
    TieBreaker
        Named after the scorer (``s_obj`` / ``s_obj:<scorer>`` with S_obj values).

    Raises
    ------
    ValueError
        Without a scorer or ``s_obj``, a scorer without ``stimuli``, or a malformed
        stimuli frame (see :func:`stimuli_frame`).
    """
    if s_obj is None and scorer is None:
        raise ValueError("give a scorer, or s_obj")
    if s_obj is None and stimuli is None:
        raise ValueError("a scorer-based tie-breaker needs the stimuli")
    if s_obj is not None:
        digest = hashlib.sha256(json.dumps(sorted((str(k), float(v)) for k, v in s_obj.items())).encode())
        default_name = "s_obj" if scorer is None else f"s_obj:{scorer.name}"
        default_version = digest.hexdigest()[:12] if scorer is None else scorer.version
    else:
        assert scorer is not None
        default_name, default_version = scorer.name, scorer.version
    frame = stimuli_frame(stimuli) if stimuli is not None else stimuli_frame({})
    return TieBreaker(
        name=name or default_name,
        version=version or default_version,
        scorer=scorer,
        stimuli=frame,
        s_obj=dict(s_obj) if s_obj is not None else None,
        cache=cache,
        workers=workers,
    )


def pairwise_agreement(pair_scores: pd.DataFrame, votes: pd.DataFrame) -> dict[str, float]:
    """How often the scorer's side agrees with decided votes (for judging a tie-breaker).

    Parameters
    ----------
    pair_scores
        ``content, cond_a, cond_b, p`` (e.g. :meth:`TieBreaker.pair_table`).
    votes
        Tidy pairwise votes (``content, cond_a, cond_b, pref``).

    Returns
    -------
    dict
        ``accuracy`` over decided votes that have a score, and ``n`` such votes.
    """
    lookup: dict[tuple[str, str, str], float] = {}
    for r in pair_scores.itertuples(index=False):
        lookup[(str(r.content), str(r.cond_a), str(r.cond_b))] = float(r.p)
        lookup[(str(r.content), str(r.cond_b), str(r.cond_a))] = 1.0 - float(r.p)
    right = 0
    n = 0
    for r in votes.itertuples(index=False):
        p = lookup.get((str(r.content), str(r.cond_a), str(r.cond_b)))
        if p is None or r.pref == 0 or p == 0.5:
            continue
        n += 1
        right += int((p > 0.5) == (r.pref > 0))
    return {"accuracy": right / n if n else math.nan, "n": n}


def build_tiebreaker(
    spec: str | Mapping[str, Any] | None,
    *,
    stimuli: pd.DataFrame | None,
    s_obj: Mapping[str, float] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> TieBreaker:
    """The tie-breaker for :func:`analysis.report.analyze` from the CLI's inputs.

    * ``spec`` a scorer name or ``{name, options}``: mean p_sym against the tie group;
    * ``spec`` a model file from ``fit-scorer``: the same with the cross-fitted heads;
    * ``s_obj`` given: the conditions' S_obj (the scorer, if any, only names it).

    Every stimulus is scored up front (with a progress bar, in ``workers`` processes,
    through ``cache``), so the report's objective score of every condition costs no
    more decoding.

    Parameters
    ----------
    spec : str, mapping or None
        Scorer name, ``{name, options}`` or model file (may be None with ``s_obj``).
    stimuli : DataFrame or None
        ``content, condition, path`` of every stimulus (needed unless ``s_obj``).
    s_obj : mapping, optional
        ``{condition: S_obj}`` to break ties by.
    options : mapping, optional
        Extra scorer options (not with a model file).
    cache : ScoreCache, optional
        Score cache; without one nothing is scored up front.
    workers : int
        Parallel workers for scoring.
    progress : callable or bool, optional
        Progress callback of the up-front scoring.

    Returns
    -------
    TieBreaker

    Raises
    ------
    ValueError
        Neither ``spec`` nor ``s_obj``, a scorer-based tie-breaker without stimulus
        paths or with missing files, and any scorer problem.
    """
    if spec is None and s_obj is None:
        raise ValueError("give a tie-breaker: a scorer name, a fitted model file, or S_obj values")
    if s_obj is not None:
        scorer = None
        if spec is not None:
            scorer, _ = resolve_scorer(spec, options)
        return make_tiebreaker(scorer, s_obj=s_obj)
    assert spec is not None
    if stimuli is None or len(stimuli) == 0:
        raise ValueError("--tiebreak needs the stimulus paths: give --stimuli stimuli.csv (columns content, "
                         "condition, path), or --s-obj s_obj.csv to break ties by S_obj")
    scorer, model = resolve_scorer(spec, options)
    frame = stimuli_frame(stimuli)
    missing = [p for p in frame["path"] if not Path(p).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} stimulus file(s) not found, e.g. {missing[0]}")
    if model is not None:
        base = model.base_scorer()
        if cache is not None:
            # Features once per stimulus (in parallel); each fold head then reads them from the cache.
            score_stimuli(base, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
            base = CachedScorer(base, cache)
        return make_tiebreaker(model.crossfit_scorer(base), frame)
    if cache is not None and hasattr(scorer, "compare_features"):
        score_stimuli(scorer, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
    return make_tiebreaker(scorer, frame, cache=cache, workers=workers)
