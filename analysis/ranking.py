"""Final ranking: significance tests, statistically tied groups, tie-breaking.

From a :class:`~analysis.bradley_terry.BTResult` (or any scores with a covariance):

1. every pair of conditions is tested with a two-sided z-test on the score difference,
   ``z = (s_i − s_j) / √(V_ii + V_jj − 2 V_ij)`` (the covariance term matters: scores
   share the centring constraint and the same votes), and the p-values are
   Holm-corrected over all ``n(n−1)/2`` pairs;
2. conditions are *separable* when their adjusted p-value is below ``alpha``;
3. in score order, every non-separable pair ``(i, j)`` ties the whole stretch between
   them; the union of these stretches gives contiguous **groups**, so a group boundary
   means every condition above it is separated by votes from every condition below it;
4. inside a group, the order respects every separation the votes do make (a condition
   is never placed above one that beats it significantly); the remaining freedom is
   resolved by the tie-breaker (highest value first) or, without one, left in score
   order and marked ``unresolved``;
5. **ranks**: a condition the votes or the tie-breaker separate from the one above it
   takes its position as rank. Without a tie-breaker, conditions joined by
   ``unresolved`` share a rank — but only while *no two of them* are separated by
   votes: "unresolved" is not transitive (A ≈ B and B ≈ C while A beats C), so a
   condition separated from any member of the shared rank starts a new rank at its
   position. Sharing along the whole unresolved chain would give C the rank of A,
   which beats it: a rank outside C's own rank interval;
6. **rank intervals**: condition ``i`` can rank no better than
   ``1 + #(conditions significantly above i)`` and no worse than
   ``n − #(conditions significantly below i)``. Every rank lies in its interval: the
   order places every condition after all that beat it and before all it beats, and
   a shared rank never includes two separated conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from analysis.bradley_terry import BTResult


@runtime_checkable
class TieBreaker(Protocol):
    """Orders conditions that the votes cannot separate (e.g. an objective scorer).

    Called with the tied conditions, returns a value per condition, higher = better.
    ``name`` and ``version`` are reported in ``separated_by`` as
    ``tiebreak:<name>@<version>``. It must not depend on the order of its input.
    """

    name: str
    version: str

    def __call__(self, conditions: list[str]) -> dict[str, float]: ...


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as ``p``).

    Parameters
    ----------
    p : array_like of float
        Unadjusted p-values, 1-D.

    Returns
    -------
    ndarray
        Adjusted p-values, capped at 1; they rise with ``p`` (ties keep their order).
    """
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adj
    return out


def pairwise_tests(conditions: Sequence[str], scores: np.ndarray, cov: np.ndarray) -> pd.DataFrame:
    """z-tests of every pair, Holm-adjusted.

    Parameters
    ----------
    conditions : sequence of str
        Names, in the order of ``scores``.
    scores : ndarray, shape (n,)
        Scores (higher = better).
    cov : ndarray, shape (n, n)
        Their covariance.

    Returns
    -------
    DataFrame
        ``cond_i, cond_j, diff, se, z, p_value, p_adjusted`` (``diff = s_i − s_j``), one
        row per pair ``i < j`` in :func:`numpy.triu_indices` order. A pair with zero
        standard error has ``z = ±inf`` (``0`` when ``diff = 0``); one whose standard
        error is unknown (NaN, e.g. a rater-clustered covariance of a single rater) has
        ``z = NaN`` and ``p = 1``: no evidence, so it separates nothing.

    Raises
    ------
    ValueError
        When ``cov`` is not ``n × n``.
    """
    scores = np.asarray(scores, dtype=float)
    cov = np.asarray(cov, dtype=float)
    n = len(scores)
    if cov.shape != (n, n):
        raise ValueError(f"covariance must be {n}×{n}, got {cov.shape}")
    i, j = np.triu_indices(n, k=1)
    diff = scores[i] - scores[j]
    var = np.diag(cov)[i] + np.diag(cov)[j] - 2 * cov[i, j]
    se = np.sqrt(np.clip(var, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf * np.sign(diff)))
    z = np.where(np.isnan(se), np.nan, z)
    p = np.where(np.isnan(z), 1.0, 2 * stats.norm.sf(np.abs(z)))
    names = np.asarray(list(conditions), dtype=object)
    return pd.DataFrame(
        {"cond_i": names[i], "cond_j": names[j], "diff": diff, "se": se, "z": z, "p_value": p,
         "p_adjusted": holm(p)}
    )


def tiebreak_id(tb: TieBreaker) -> str:
    """``<name>@<version>`` of a tie-breaker, as recorded in parameters.

    Parameters
    ----------
    tb : TieBreaker

    Returns
    -------
    str
    """
    return f"{tb.name}@{tb.version}"


def tiebreak_label(tb: TieBreaker) -> str:
    """``tiebreak:`` + :func:`tiebreak_id`, the ``separated_by`` value of pairs a tie-breaker ordered."""
    return f"tiebreak:{tiebreak_id(tb)}"


def _groups(sep: np.ndarray) -> np.ndarray:
    """Group id per position (score order) from the separability matrix (same order)."""
    n = len(sep)
    reach = np.arange(n)
    for a in range(n):
        tied = np.flatnonzero(~sep[a, a + 1 :])
        if len(tied):
            reach[a] = a + 1 + tied.max()
    # A boundary after position k exists iff no tied stretch starting at or before k crosses it.
    cover = np.maximum.accumulate(reach)
    boundary = cover[:-1] == np.arange(n - 1)
    return np.concatenate([[0], np.cumsum(boundary)])


def _order_within(members: list[int], sep: np.ndarray, scores: np.ndarray, tb_value: dict[int, float] | None):
    """Order a group: never above a condition that beats you by votes; then tie-breaker/score.

    Repeatedly picks, among the remaining members no remaining member beats by votes, the
    one with the highest (tie-breaker value, score). The beaten-by counts are kept up to
    date as members are placed, so a group of g members costs O(g²), not O(g³).
    """
    idx = np.asarray(members, dtype=np.int64)
    s = scores[idx]
    beats = sep[np.ix_(idx, idx)] & (s[:, None] > s[None, :])  # beats[o, c]: o beats c by votes
    n_beaten = beats.sum(axis=0)
    remaining = np.ones(len(idx), dtype=bool)
    if tb_value is None:
        def key(k: int) -> tuple[float, ...]:
            return (scores[idx[k]], -idx[k])
    else:
        def key(k: int) -> tuple[float, ...]:
            return (tb_value[idx[k]], scores[idx[k]], -idx[k])
    out = []
    for _ in range(len(idx)):
        pick = max(np.flatnonzero(remaining & (n_beaten == 0)).tolist(), key=key)
        out.append(int(idx[pick]))
        remaining[pick] = False
        n_beaten -= beats[pick]
    return out


@dataclass(frozen=True, eq=False)
class Ranking:
    """A final ranking.

    Attributes
    ----------
    table : DataFrame
        ``rank, condition, score, ci_low, ci_high, group, separated_by, rank_low, rank_high``
        in final order.
    pairwise : DataFrame
        Every pair's test (see :func:`pairwise_tests`) plus ``separable``.
    adjacent : DataFrame
        One row per adjacent pair of the final order: ``pair, upper, lower, diff, se,
        p_value, p_adjusted, separated_by``.
    params : dict
        ``alpha``, ``method`` (covariance used), ``correction`` and the tie-breaker.
    """

    table: pd.DataFrame
    pairwise: pd.DataFrame
    adjacent: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`table`.

        Returns
        -------
        DataFrame
        """
        return self.table.copy()

    def adjacent_pairs(self) -> pd.DataFrame:
        """A copy of :attr:`adjacent`.

        Returns
        -------
        DataFrame
        """
        return self.adjacent.copy()

    @property
    def groups(self) -> list[list[str]]:
        """Conditions of each tie group, best group first."""
        return [list(g["condition"]) for _, g in self.table.groupby("group", sort=True)]


def rank(
    bt_result: BTResult,
    alpha: float = 0.05,
    tiebreak: TieBreaker | None = None,
    *,
    method: str | None = None,
) -> Ranking:
    """Rank the conditions of a fit, with tied groups and an optional tie-breaker.

    Parameters
    ----------
    bt_result : BTResult
        Scores and their covariance.
    alpha : float
        Family-wise error rate of the Holm-corrected pairwise tests.
    tiebreak : TieBreaker, optional
        Orders conditions inside a tie group (higher = better).
    method : {"hessian", "bootstrap"}, optional
        Covariance to test with (default: the fit's primary interval method).

    Returns
    -------
    Ranking
        ``separated_by`` of a row (relative to the row above; ``top`` for the first) is
        ``votes``, ``tiebreak:<name>@<version>`` or ``unresolved``. Without a tie-breaker,
        conditions joined by ``unresolved`` share a rank (the better one) as long as no
        two of them are separated by votes; otherwise a row takes its position as rank.
        ``rank_low <= rank <= rank_high`` always holds, and a condition significantly
        below another always has a larger rank.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    method = method or bt_result.primary
    cov = bt_result.covariance(method)
    _, lo, hi = bt_result.intervals(method)
    return rank_scores(bt_result.conditions, bt_result.scores, cov, alpha=alpha, tiebreak=tiebreak,
                       ci_low=lo, ci_high=hi, method=method)


def rank_scores(
    conditions: Sequence[str],
    scores: np.ndarray,
    cov: np.ndarray,
    *,
    alpha: float = 0.05,
    tiebreak: TieBreaker | None = None,
    ci_low: np.ndarray | None = None,
    ci_high: np.ndarray | None = None,
    method: str = "given",
) -> Ranking:
    """As :func:`rank`, from plain scores (higher = better) and their covariance.

    Parameters
    ----------
    conditions : sequence of str
        Names, in the order of ``scores``.
    scores : ndarray, shape (n,)
        Scores, higher = better.
    cov : ndarray, shape (n, n)
        Their covariance.
    alpha : float
        Family-wise error rate of the Holm-corrected pairwise tests.
    tiebreak : TieBreaker, optional
        Orders conditions inside a tie group (higher = better).
    ci_low, ci_high : ndarray, optional
        Interval bounds per condition, copied into the table (NaN when not given).
    method : str
        Label of the covariance, recorded in ``params["method"]``.

    Returns
    -------
    Ranking

    Raises
    ------
    ValueError
        When ``cov`` is not ``n × n`` or the tie-breaker gives no value for a tied
        condition.
    """
    conds = [str(c) for c in conditions]
    scores = np.asarray(scores, dtype=float)
    n = len(conds)
    tests = pairwise_tests(conds, scores, cov)
    sep = np.zeros((n, n), dtype=bool)
    ii, jj = np.triu_indices(n, k=1)
    s_ok = (tests["p_adjusted"] < alpha).to_numpy()
    sep[ii, jj] = sep[jj, ii] = s_ok
    tests["separable"] = s_ok

    tb_value: dict[int, float] | None = None
    by_score = np.argsort(-scores, kind="stable")
    group_of_pos = _groups(sep[np.ix_(by_score, by_score)])
    group = np.empty(n, dtype=np.int64)
    group[by_score] = group_of_pos + 1
    order: list[int] = []
    for g in range(1, int(group.max()) + 1):
        members = [int(c) for c in by_score if group[c] == g]
        if tiebreak is not None and len(members) > 1:
            values = tiebreak([conds[c] for c in members])
            missing = [conds[c] for c in members if conds[c] not in values]
            if missing:
                raise ValueError(f"tie-breaker {tiebreak.name!r} gave no value for {missing}")
            tb_value = {c: float(values[conds[c]]) for c in members}
        else:
            tb_value = None
        order.extend(_order_within(members, sep, scores, tb_value))

    label = tiebreak_label(tiebreak) if tiebreak is not None else "unresolved"
    separated_by = ["top"]
    ranks = [1]
    sharing = [order[0]] if n else []  # the conditions holding the current rank
    for k in range(1, n):
        up, low = order[k - 1], order[k]
        by_votes = group[up] != group[low] or (sep[up, low] and scores[up] > scores[low])
        how = "votes" if by_votes else label
        separated_by.append(how)
        # "Not separated" is not transitive: share the rank only with conditions none of
        # which the votes separate from this one (else a chain A≈B≈C ranks C level with A
        # although A beats C, and C's rank falls outside its rank interval).
        if how == "unresolved" and not sep[low, sharing].any():
            ranks.append(ranks[-1])
            sharing.append(low)
        else:
            ranks.append(k + 1)
            sharing = [low]

    better = (sep & (scores[:, None] > scores[None, :])).sum(axis=0)  # significantly above each condition
    worse = (sep & (scores[:, None] < scores[None, :])).sum(axis=0)
    idx = np.array(order, dtype=np.int64)
    table = pd.DataFrame(
        {
            "rank": ranks,
            "condition": [conds[c] for c in order],
            "score": scores[idx],
            "ci_low": np.nan if ci_low is None else np.asarray(ci_low, dtype=float)[idx],
            "ci_high": np.nan if ci_high is None else np.asarray(ci_high, dtype=float)[idx],
            "group": group[idx],
            "separated_by": separated_by,
            "rank_low": 1 + better[idx],
            "rank_high": n - worse[idx],
        }
    )
    adjacent = _adjacent(conds, order, tests, separated_by)
    params = {
        "alpha": alpha, "method": method, "test": "two-sided z on score differences",
        "correction": "holm", "tiebreak": None if tiebreak is None else tiebreak_id(tiebreak),
    }
    return Ranking(table=table, pairwise=tests, adjacent=adjacent, params=params)


def _adjacent(conds: list[str], order: list[int], tests: pd.DataFrame, separated_by: list[str]) -> pd.DataFrame:
    n = len(conds)
    up, low = np.asarray(order[:-1], dtype=np.int64), np.asarray(order[1:], dtype=np.int64)
    i, j = np.minimum(up, low), np.maximum(up, low)
    row = i * n - i * (i + 1) // 2 + (j - i - 1)  # position of (i, j) in np.triu_indices(n, 1) order
    sign = np.where(up < low, 1.0, -1.0)
    names = np.asarray(conds, dtype=object)
    pair = [f"{a} > {b}" for a, b in zip(names[up], names[low], strict=True)]
    return pd.DataFrame({
        "pair": pair, "upper": names[up], "lower": names[low],
        "diff": sign * tests["diff"].to_numpy()[row], "se": tests["se"].to_numpy()[row],
        "p_value": tests["p_value"].to_numpy()[row], "p_adjusted": tests["p_adjusted"].to_numpy()[row],
        "separated_by": separated_by[1:],
    }, columns=["pair", "upper", "lower", "diff", "se", "p_value", "p_adjusted", "separated_by"])
