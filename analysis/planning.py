"""Power planning for pairwise studies: how many votes separate two conditions.

:func:`votes_needed` is the Wald sample size for the Davidson difference of one pair;
:func:`study_votes` gives a whole study's totals (adjacent pairs, all pairs, Holm's worst case);
:func:`votes_needed_from_pilot` takes the tie rate, the rater design effect and the differences
from a pilot study. ``panelrank plan-votes`` prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import bradley_terry as bt
from analysis import frames, ranking
from analysis.active import check_alpha, fisher_weight


def _check_power_args(alpha: float, power: float, comparisons: int) -> None:
    check_alpha(alpha)
    if not isinstance(power, int | float) or not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if isinstance(comparisons, bool) or not isinstance(comparisons, int | np.integer) or comparisons < 1:
        raise ValueError(f"comparisons must be a positive integer, got {comparisons!r}")


def nu_from_tie_rate(tie_rate: float) -> float:
    """Davidson ``ν`` whose tie share between equal conditions is ``tie_rate``: ``ν = 2τ/(1 − τ)``.

    At ``d = 0`` Davidson's ``P(tie) = ν/(2 + ν)`` (Davidson 1970).
    """
    return 2.0 * tie_rate / (1.0 - tie_rate)


def votes_needed(
    delta: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    tie_rate: float = 0.0,
    design_effect: float = 1.0,
    comparisons: int = 1,
) -> int:
    """Votes on one condition pair to separate two conditions ``delta`` apart.

    The Wald sample size for a two-sided z-test of ``d = s_i − s_j`` (the test of
    :mod:`analysis.ranking`; e.g. Chow, Shao & Wang 2008, *Sample Size Calculations in
    Clinical Research*, §3.1)::

        n = DE · (z_{1−α/(2m)} + z_{power})² / (w(δ) · δ²)

    with ``w(δ)`` the Fisher information of one Davidson comparison at ``δ``
    (:func:`fisher_weight`, ``ν`` from the tie rate), ``DE`` the design effect of rater
    clustering (variance inflation of correlated votes, Kish 1965 §5.4: ``1 + (b − 1)·ICC``
    for ``b`` votes per rater on the pair) and ``m`` the number of tests the level is shared
    by (Bonferroni, the first step of Holm). The votes are direct comparisons of the two;
    comparisons with other conditions add indirect evidence, so in a study this is an upper
    bound for a pair whose conditions are also compared with others.

    Parameters
    ----------
    delta : float
        Difference to detect, in Bradley–Terry (Davidson) units (natural-log strength), > 0.
    alpha : float
        Two-sided level (family-wise over ``comparisons`` tests).
    power : float
        Probability of separating them when they are ``delta`` apart.
    tie_rate : float
        Share of "no preference" votes between equal conditions, in [0, 1).
    design_effect : float
        Variance inflation from rater clustering (≥ 1 in practice; > 0).
    comparisons : int
        Tests sharing ``alpha`` (1: a single pair; ``n(n−1)/2`` for Holm's worst case).

    Returns
    -------
    int
        Votes on the pair (rounded up, at least 1).

    Raises
    ------
    ValueError
        On a non-positive or non-finite ``delta``, ``alpha``/``power`` outside (0, 1), a tie
        rate outside [0, 1), a non-positive design effect or ``comparisons`` below 1.
    """
    if not isinstance(delta, int | float) or not math.isfinite(delta) or delta <= 0:
        raise ValueError(f"delta must be a positive number (BT units), got {delta!r}")
    _check_power_args(alpha, power, comparisons)
    if not isinstance(tie_rate, int | float) or not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate must be in [0, 1), got {tie_rate!r}")
    if not isinstance(design_effect, int | float) or not math.isfinite(design_effect) or design_effect <= 0:
        raise ValueError(f"design_effect must be a positive number, got {design_effect!r}")
    w = float(fisher_weight(float(delta), nu_from_tie_rate(float(tie_rate))))
    z = stats.norm.ppf(1 - alpha / (2 * comparisons)) + stats.norm.ppf(power)
    return max(1, math.ceil(design_effect * z**2 / (w * delta**2) - 1e-9))


@dataclass(frozen=True)
class StudyVotes:
    """Votes a study of ``n_conditions`` needs to separate conditions ``delta`` apart (:func:`study_votes`).

    Attributes
    ----------
    per_pair : int
        Votes per condition pair at ``alpha`` (one test).
    comparisons : int
        Condition pairs, ``n(n − 1)/2``: the ranking tests them all.
    per_pair_holm : int
        Votes per pair at ``alpha / comparisons`` (Holm's worst case, the last pair tested).
    adjacent_pairs : int
        ``n − 1``: the pairs a ranking must separate.
    """

    per_pair: int
    comparisons: int
    per_pair_holm: int
    adjacent_pairs: int

    @property
    def adjacent_total(self) -> tuple[int, int]:
        """Votes over the adjacent pairs: (at α, at Holm's worst case)."""
        return self.per_pair * self.adjacent_pairs, self.per_pair_holm * self.adjacent_pairs

    @property
    def all_pairs_total(self) -> tuple[int, int]:
        """Votes over every pair: (at α, at Holm's worst case)."""
        return self.per_pair * self.comparisons, self.per_pair_holm * self.comparisons


def study_votes(delta: float, n_conditions: int, **kw: float) -> StudyVotes:
    """:func:`votes_needed` for a whole study: per pair at α and at Holm's worst case, and totals.

    Parameters
    ----------
    delta : float
        Difference to detect, in Bradley–Terry units.
    n_conditions : int
        Conditions in the study (≥ 2).
    **kw
        ``alpha``, ``power``, ``tie_rate``, ``design_effect`` as for :func:`votes_needed`.

    Returns
    -------
    StudyVotes

    Raises
    ------
    ValueError
        Fewer than 2 conditions, or a bad argument of :func:`votes_needed`.
    """
    if not isinstance(n_conditions, int) or isinstance(n_conditions, bool) or n_conditions < 2:
        raise ValueError(f"n_conditions must be a whole number ≥ 2, got {n_conditions!r}")
    m = n_conditions * (n_conditions - 1) // 2
    return StudyVotes(per_pair=votes_needed(delta, **kw), comparisons=m,
                      per_pair_holm=votes_needed(delta, comparisons=m, **kw), adjacent_pairs=n_conditions - 1)


@dataclass(frozen=True)
class PilotPlan:
    """Votes needed, estimated from a pilot study.

    Attributes
    ----------
    tie_rate : float
        Tie share between equal conditions implied by the pilot's Davidson ``ν``: ``ν/(2 + ν)``.
    design_effect : float
        Rater-clustered over model-based variance of the adjacent differences (mean ratio,
        at least 1): how much the pilot's raters' correlated votes inflate the variance.
    alpha, power : float
    comparisons : int
    delta : float or None
        The difference planned for (``None``: each adjacent pair's own pilot difference).
    votes_per_pair : int or None
        Votes per pair at ``delta`` (``None`` without ``delta``).
    adjacent : DataFrame
        Per adjacent pair of the pilot's ranking: ``upper, lower, diff, votes_per_pair``
        (at ``delta`` if given, else at the pair's own ``|diff|``; missing when the pilot
        difference is 0).
    n_votes, n_raters : int
        Size of the pilot.
    """

    tie_rate: float
    design_effect: float
    alpha: float
    power: float
    comparisons: int
    delta: float | None
    votes_per_pair: int | None
    adjacent: pd.DataFrame
    n_votes: int
    n_raters: int

    @property
    def total_adjacent(self) -> int:
        """Sum of ``votes_per_pair`` over the adjacent pairs (missing ones left out)."""
        return int(self.adjacent["votes_per_pair"].dropna().sum())


def votes_needed_from_pilot(
    votes: pd.DataFrame,
    *,
    delta: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    comparisons: int = 1,
) -> PilotPlan:
    """Votes needed per pair, with the tie rate, design effect and differences of a pilot.

    The pilot is fitted by :func:`analysis.bradley_terry.fit` (Davidson ties, rater-clustered
    intervals) and ranked by :func:`analysis.ranking.rank`. Its tie share at ``d = 0``
    (``ν/(2 + ν)``), its design effect (mean over adjacent pairs of the clustered over the
    model-based variance of the difference, floored at 1) and — without ``delta`` — each
    adjacent pair's estimated difference go into :func:`votes_needed`.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (a :class:`analysis.frames.Votes` or any frame
        :func:`analysis.frames.validate` accepts), main votes of at least 2 raters.
    delta : float, optional
        Difference to plan for; default: each adjacent pair's pilot difference.
    alpha, power, comparisons
        As for :func:`votes_needed`.

    Returns
    -------
    PilotPlan

    Raises
    ------
    analysis.frames.FrameError
        A malformed frame.
    ValueError
        Not pairwise votes, fewer than 2 raters, comparisons that do not determine the
        scores, or bad options.
    """
    _check_power_args(alpha, power, comparisons)
    if delta is not None and (not isinstance(delta, int | float) or not math.isfinite(delta) or delta <= 0):
        raise ValueError(f"delta must be a positive number (BT units), got {delta!r}")
    df = frames.validate(votes)
    if frames.detect_kind(df) != "pairwise":
        raise ValueError("a pilot for plan-votes must be pairwise votes")
    try:
        fit = bt.fit(df, ties="davidson", ci="cluster", alpha=alpha)
    except bt.ComparisonGraphError as exc:
        raise ValueError(f"the pilot does not determine the scores: {exc}") from exc
    n_raters = int(fit.n_raters or 0)
    if n_raters < 2:
        raise ValueError("a pilot needs votes of at least 2 raters (for the design effect)")
    nu = float(fit.params.get("nu", 0.0))
    tie_rate = nu / (2.0 + nu)
    rk = ranking.rank(fit, alpha=alpha)
    names = list(fit.conditions)
    idx = {c: k for k, c in enumerate(names)}
    up = np.array([idx[c] for c in rk.adjacent["upper"]], dtype=np.int64)
    lo = np.array([idx[c] for c in rk.adjacent["lower"]], dtype=np.int64)
    hess, clus = fit.covariance("hessian"), fit.covariance("cluster")

    def diff_var(c: np.ndarray) -> np.ndarray:
        return np.diag(c)[up] + np.diag(c)[lo] - 2 * c[up, lo]

    ratio = diff_var(clus) / np.maximum(diff_var(hess), 1e-300)
    deff = max(1.0, float(np.nanmean(ratio))) if len(ratio) and np.isfinite(ratio).any() else 1.0
    diff = fit.scores[up] - fit.scores[lo]
    kw = {"alpha": alpha, "power": power, "tie_rate": tie_rate, "design_effect": deff, "comparisons": comparisons}
    per_pair = None if delta is None else votes_needed(float(delta), **kw)
    need = [per_pair if delta is not None else (votes_needed(float(abs(x)), **kw) if abs(x) > 1e-9 else None)
            for x in diff]
    adjacent = pd.DataFrame({"upper": rk.adjacent["upper"].to_numpy(), "lower": rk.adjacent["lower"].to_numpy(),
                             "diff": diff, "votes_per_pair": pd.array(need, dtype="Int64")})
    return PilotPlan(tie_rate=tie_rate, design_effect=deff, alpha=float(alpha), power=float(power),
                     comparisons=int(comparisons), delta=None if delta is None else float(delta),
                     votes_per_pair=per_pair, adjacent=adjacent, n_votes=int(fit.n_votes.sum() // 2),
                     n_raters=n_raters)
