"""Agreement of each rater with the Bradley–Terry fit of the *other* raters, and its sign-flip test
(``bt_agreement``; exact leave-one-rater-out refits for small panels, one Newton step above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, sparse, stats
from scipy.sparse import linalg as splinalg
from scipy.special import expit, log_expit

#: Up to this many raters the leave-one-rater-out Bradley–Terry fits are exact refits ...
EXACT_LOO_MAX_RATERS = 50


#: ... provided there are at most this many conditions (a dense refit per rater stays cheap).
EXACT_LOO_MAX_CONDITIONS = 200


#: Ridge on the log-strengths of the reference fit: a N(0, 1/BT_RIDGE) prior, negligible
#: next to the information of a few votes per condition but finite when one never loses.
BT_RIDGE = 0.1


#: Conditions above which the Newton systems are solved as sparse matrices.
_SPARSE_ABOVE = 500


@dataclass(frozen=True)
class _Votes:
    """Decided and undecided pairwise main votes as condition and rater codes.

    ``y`` is the outcome for ``a`` (1 win, 0.5 "no preference", 0 loss), ``pref`` the
    answer towards ``a`` (graded), ``r`` the rater code.
    """

    a: np.ndarray
    b: np.ndarray
    y: np.ndarray
    pref: np.ndarray
    r: np.ndarray
    n_conditions: int
    raters: pd.Index


def _pairwise_votes(main: pd.DataFrame) -> _Votes:
    """Codes of validated pairwise main votes (raters sorted, as in the screening table)."""
    n = len(main)
    codes, conds = pd.factorize(pd.concat([main["cond_a"], main["cond_b"]], ignore_index=True))
    pref = main["pref"].to_numpy(dtype=float)
    r, raters = pd.factorize(main["rater"], sort=True)
    y = np.where(pref > 0, 1.0, np.where(pref < 0, 0.0, 0.5))
    return _Votes(codes[:n].astype(np.int64), codes[n:].astype(np.int64), y, pref, r.astype(np.int64),
                  len(conds), pd.Index(raters, name="rater"))


def _pair_counts(v: _Votes, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Votes aggregated per ordered pair: ``(i, j, wins of i, votes)``, ties as half wins."""
    a, b, y = (v.a, v.b, v.y) if rows is None else (v.a[rows], v.b[rows], v.y[rows])
    key, inv = np.unique(a * v.n_conditions + b, return_inverse=True)
    wins, total = np.bincount(inv, y, len(key)), np.bincount(inv, minlength=len(key)).astype(float)
    return key // v.n_conditions, key % v.n_conditions, wins, total


def _information(i: np.ndarray, j: np.ndarray, w: np.ndarray, n: int) -> np.ndarray | sparse.csc_array:
    """``ridge·I + Σ w (e_i − e_j)(e_i − e_j)ᵀ``: minus the Hessian of the penalised log-likelihood."""
    rows = np.concatenate([i, j, i, j, np.arange(n)])
    cols = np.concatenate([i, j, j, i, np.arange(n)])
    vals = np.concatenate([w, w, -w, -w, np.full(n, BT_RIDGE)])
    if n > _SPARSE_ABOVE:
        return sparse.coo_array((vals, (rows, cols)), shape=(n, n)).tocsc()
    return np.bincount(rows * n + cols, vals, n * n).reshape(n, n)


def _solve(h: np.ndarray | sparse.csc_array, rhs: np.ndarray) -> np.ndarray:
    """``h⁻¹ rhs`` for the positive-definite information (dense Cholesky or sparse LU)."""
    if sparse.issparse(h):
        return splinalg.splu(h).solve(rhs)
    return linalg.cho_solve(linalg.cho_factor(h), rhs)


def _bt_fit(i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, n: int,
            start: np.ndarray | None = None) -> np.ndarray:
    """Ridge-penalised Bradley–Terry log-strengths by Newton's method with step halving."""

    def objective(s: np.ndarray) -> float:
        d = s[i] - s[j]
        return float(wins @ log_expit(d) + (total - wins) @ log_expit(-d) - BT_RIDGE / 2 * s @ s)

    s = np.zeros(n) if start is None else start.copy()
    f = objective(s)
    for _ in range(100):
        p = expit(s[i] - s[j])
        e = wins - total * p
        grad = np.bincount(i, e, n) - np.bincount(j, e, n) - BT_RIDGE * s
        step = _solve(_information(i, j, total * p * (1 - p), n), grad)
        t = 1.0
        while t > 1e-6 and objective(s + t * step) < f - 1e-12:
            t /= 2  # the penalised log-likelihood is concave: a short enough step always improves it
        s = s + t * step
        f = objective(s)
        if np.max(np.abs(t * step), initial=0.0) < 1e-9:
            break
    return s


def _loo_scores(v: _Votes) -> np.ndarray:
    """``(n_raters, n_conditions)``: each rater's reference, the fit of everyone else.

    Exact refits (warm-started at the pooled fit) for small panels; otherwise the
    one-step Newton approximation ``ŝ − H⁻¹ g_r`` for all raters in one solve.
    """
    n, n_raters = v.n_conditions, len(v.raters)
    i, j, wins, total = _pair_counts(v)
    pooled = _bt_fit(i, j, wins, total, n)
    if n_raters <= EXACT_LOO_MAX_RATERS and n <= EXACT_LOO_MAX_CONDITIONS:
        return np.vstack([_bt_fit(*_pair_counts(v, v.r != r), n, start=pooled) for r in range(n_raters)])
    p = expit(pooled[i] - pooled[j])
    e = v.y - expit(pooled[v.a] - pooled[v.b])
    # Each rater's score vector at the pooled fit, one row per rater.
    g = (np.bincount(v.r * n + v.a, e, n_raters * n) - np.bincount(v.r * n + v.b, e, n_raters * n))
    step = _solve(_information(i, j, total * p * (1 - p), n), g.reshape(n_raters, n).T)
    return pooled[None, :] - step.T


def _bt_agreement(main: pd.DataFrame) -> pd.DataFrame:
    """Agreement of each rater with the Bradley–Terry fit of the other raters, and its test.

    ``n_bt_votes``: main votes (any answer) on pairs the others' fit separates (``d ≠ 0``).
    ``bt_agreement``: share of the decided ones whose side matches the sign of ``d``.
    ``bt_p``: one-sided sign-flip p-value of ``U = Σ pref·d`` (see the module docstring);
    1 for a rater who never expressed a preference (``U`` is then 0 under every sign flip).
    ``_bt_z``: the standardised ``U``, used to find what a typical rater of the panel shows.
    """
    v = _pairwise_votes(main)
    s = _loo_scores(v)
    d = s[v.r, v.a] - s[v.r, v.b]
    counted, decided = d != 0, (v.pref != 0) & (d != 0)
    k = len(v.raters)
    n, n_decided = np.bincount(v.r, counted, k), np.bincount(v.r, decided, k)
    agree = np.bincount(v.r, decided & (np.sign(v.pref) == np.sign(d)), k)
    u, var = np.bincount(v.r, v.pref * d, k), np.bincount(v.r, (v.pref * d) ** 2, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, u / np.sqrt(var), 0.0)
        p = np.where(n == 0, np.nan, np.where(var > 0, stats.norm.sf(z), 1.0))
        share = agree / n_decided
    return pd.DataFrame({"bt_agreement": share, "bt_p": p, "n_bt_votes": n.astype(int), "_bt_z": z},
                        index=v.raters)
