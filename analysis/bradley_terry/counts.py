"""Sufficient statistics of pairwise votes: per compared pair, the wins of each side and the ties
(pooled in :class:`PairCounts`, per rater in :class:`VoteCounts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from analysis import frames, screening


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Sufficient statistics: for every compared pair ``i < j``, wins of i, ties, wins of j.

    Attributes
    ----------
    conditions : tuple of str
    i, j : ndarray of int
        Condition indices of each pair (``i < j``).
    wins_i, ties, wins_j : ndarray of float
        (Weighted) counts per pair.
    n_votes : ndarray of int
        Votes (unweighted) involving each condition.
    """

    conditions: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    wins_i: np.ndarray
    ties: np.ndarray
    wins_j: np.ndarray
    n_votes: np.ndarray

    @property
    def n(self) -> int:
        """Number of conditions."""
        return len(self.conditions)

    def stacked(self) -> np.ndarray:
        """Counts as an array ``(P, 3)``: wins_i, ties, wins_j.

        Returns
        -------
        ndarray of float, shape (P, 3)
            One row per compared pair, in the order of ``i``/``j``.
        """
        return np.column_stack([self.wins_i, self.ties, self.wins_j])

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``wins[a, b]`` (a beat b) and symmetric ``ties`` matrices.

        Returns
        -------
        wins : ndarray, shape (n, n)
            ``wins[a, b]`` = (weighted) times ``a`` was preferred to ``b``.
        ties : ndarray, shape (n, n)
            Symmetric: ``ties[a, b] = ties[b, a]`` = ties between ``a`` and ``b``.
        """
        wins = np.zeros((self.n, self.n))
        ties = np.zeros((self.n, self.n))
        np.add.at(wins, (self.i, self.j), self.wins_i)
        np.add.at(wins, (self.j, self.i), self.wins_j)
        np.add.at(ties, (self.i, self.j), self.ties)
        return wins, ties + ties.T

    @classmethod
    def from_matrices(
        cls,
        conditions: Sequence[str],
        wins: np.ndarray | sparse.spmatrix | sparse.sparray,
        ties: np.ndarray | sparse.spmatrix | sparse.sparray | None = None,
        n_votes: np.ndarray | None = None,
    ) -> PairCounts:
        """Build from a win matrix (``wins[a, b]`` = times a beat b) and a tie matrix.

        The tie matrix may be symmetric or triangular: ``ties[a, b] + ties[b, a]`` is the
        number of ties between a and b (a symmetric matrix is halved first). Pairs with no
        count at all are left out.

        Parameters
        ----------
        conditions : sequence of str
            Names, in matrix order (must be unique).
        wins : (n, n) array or sparse matrix
            Non-negative, finite (possibly weighted or fractional) win counts, zero diagonal.
        ties : (n, n) array or sparse matrix, optional
            Non-negative, finite tie counts, zero diagonal (default: no ties).
        n_votes : array, optional
            Votes per condition (default: the counts involving it).

        Returns
        -------
        PairCounts

        Raises
        ------
        ValueError
            On duplicate names, a matrix that is not ``n × n``, negative or non-finite counts,
            or a non-zero diagonal.
        """
        conds = tuple(str(c) for c in conditions)
        n = len(conds)
        if len(set(conds)) != n:
            raise ValueError("condition names must be unique")
        w = sparse.coo_array(wins, dtype=float)
        if w.shape != (n, n):
            raise ValueError(f"wins must be {n}×{n}, got {w.shape}")
        t = sparse.coo_array((n, n), dtype=float) if ties is None else sparse.coo_array(ties, dtype=float)
        if t.shape != (n, n):
            raise ValueError(f"ties must be {n}×{n}, got {t.shape}")
        if (w.data < 0).any() or (t.data < 0).any() or not np.isfinite(w.data).all() or not np.isfinite(
            t.data
        ).all():
            raise ValueError("counts must be finite and non-negative")
        if (w.diagonal() != 0).any() or (t.diagonal() != 0).any():
            raise ValueError("a condition cannot be compared with itself (non-zero diagonal)")
        t = _one_triangle(t.tocsr())
        # Pair key over i < j, with wins for both orientations.
        rows = np.concatenate([w.row, w.col, t.row])
        cols = np.concatenate([w.col, w.row, t.col])
        lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
        key = lo.astype(np.int64) * n + hi
        uniq, inv = np.unique(key, return_inverse=True)
        nw = len(w.data)
        first = w.row < w.col
        wi = np.bincount(inv[:nw], np.where(first, w.data, 0.0), len(uniq))
        wj = np.bincount(inv[:nw], np.where(first, 0.0, w.data), len(uniq))
        # Each tie appears at (a, b) and (b, a) after symmetrising: keep half.
        tt = np.bincount(inv[2 * nw:], t.data, len(uniq)) / 2.0
        keep = (wi + wj + tt) > 0
        pi, pj = (uniq // n)[keep], (uniq % n)[keep]
        wi, tt, wj = wi[keep], tt[keep], wj[keep]
        if n_votes is None:
            tot = wi + tt + wj
            n_votes = np.bincount(pi, tot, n) + np.bincount(pj, tot, n)
        return cls(conds, pi, pj, wi, tt, wj, np.asarray(n_votes))


def _one_triangle(t: sparse.csr_array) -> sparse.coo_array:
    """A tie matrix as symmetric counts ``T + Tᵀ`` with every tie once.

    A matrix symmetric within float rounding (built as ``T + T.T`` from halves, read back
    from a CSV) holds each tie in both cells: averaged and counted once. A triangular one
    (each pair in at most one cell) is taken as it is. Anything else is ambiguous.
    """
    if _close(abs(t - t.T), abs(t) + abs(t.T)):
        upper = sparse.triu((t + t.T) / 2.0, k=1)
        return (upper + upper.T).tocoo()
    both = t.multiply(t.T)
    if both.nnz:
        r, c = both.nonzero()
        differ = np.abs(np.asarray(t[r, c]).ravel() - np.asarray(t[c, r]).ravel()) > 0
        k = int(np.flatnonzero(differ)[0]) if differ.any() else 0
        a, b = int(r[k]), int(c[k])
        raise ValueError(f"the tie matrix is neither symmetric nor triangular (ties[{a}, {b}] = {t[a, b]:g}, "
                         f"ties[{b}, {a}] = {t[b, a]:g}): give each tie once or in both cells")
    return (t + t.T).tocoo()


def _close(diff: sparse.csr_array, scale: sparse.csr_array) -> bool:
    """Every cell of ``diff`` within 1e-9 of ``scale`` (relative), or 1e-12 absolute."""
    if diff.nnz == 0:
        return True
    d = diff.tocoo()
    ref = np.asarray(scale[d.row, d.col]).ravel()
    return bool((d.data <= np.maximum(1e-9 * ref, 1e-12)).all())


@dataclass(frozen=True, eq=False)
class VoteCounts:
    """Counts from a vote frame: the pooled :class:`PairCounts` and per-rater counts.

    ``per_rater`` is a sparse ``(n_raters, 3·P)`` matrix: row ``r`` holds rater r's
    wins_i, ties, wins_j for every pair (in that block order). ``graded``: whether a vote
    of strength ``|pref|`` counted as that many wins.
    """

    pairs: PairCounts
    raters: tuple[str, ...]
    per_rater: sparse.csr_array
    graded: bool = False


def count_votes(votes: pd.DataFrame, graded: bool = False, main_only: bool = True) -> VoteCounts:
    """Aggregate a pairwise frame into sufficient statistics (pooled and per rater).

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here unless a pairwise :class:`analysis.frames.Votes`).
    graded : bool
        Count a vote of strength ``|pref|`` as that many wins.
    main_only : bool
        Drop consistency repeats and gold trials first (:func:`analysis.screening.main_votes`).

    Returns
    -------
    VoteCounts

    Raises
    ------
    frames.FrameError
        On a malformed frame.
    ValueError
        When no votes are left to count.
    """
    df = frames.validate(votes, "pairwise")
    if main_only:
        df = screening.main_votes(df)
    if len(df) == 0:
        raise ValueError("no votes to fit (after dropping repeats and gold trials)")
    # Factorising the Arrow-backed columns directly avoids building Python strings.
    codes, uniq = pd.factorize(pd.concat([df["cond_a"], df["cond_b"]], ignore_index=True), sort=True)
    conds = tuple(str(c) for c in uniq)
    ia, ib = codes[: len(df)].astype(np.int64), codes[len(df) :].astype(np.int64)
    pref = df["pref"].to_numpy(dtype=np.int64)
    n = len(conds)
    lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
    p_lo = np.where(ia < ib, pref, -pref)  # preference for the lower-index condition
    weight = np.abs(p_lo).astype(float) if graded else np.ones(len(p_lo))
    uniq, pair = np.unique(lo * n + hi, return_inverse=True)
    n_pairs = len(uniq)
    outcome = np.where(p_lo > 0, 0, np.where(p_lo == 0, 1, 2))
    weight = np.where(outcome == 1, 1.0, weight)  # a tie counts once whatever the grading
    rater_codes, raters = pd.factorize(df["rater"], sort=True)
    col = outcome * n_pairs + pair
    per_rater = sparse.csr_array(
        (weight, (rater_codes, col)), shape=(len(raters), 3 * n_pairs)
    )
    per_rater.sum_duplicates()
    totals = np.bincount(col, weight, 3 * n_pairs).reshape(3, n_pairs)
    n_votes = np.bincount(ia, minlength=n) + np.bincount(ib, minlength=n)
    pc = PairCounts(conds, uniq // n, uniq % n, totals[0], totals[1], totals[2], n_votes)
    return VoteCounts(pc, tuple(str(r) for r in raters), per_rater, graded)
