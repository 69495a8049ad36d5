"""Intervals of a fit that respect raters: the rater-clustered sandwich covariance and the
rater-cluster bootstrap (see :mod:`analysis.bradley_terry`, section Intervals).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from analysis import resample
from analysis.bradley_terry.counts import VoteCounts
from analysis.bradley_terry.graph import _components
from analysis.bradley_terry.likelihood import _effective, _newton_batched, _newton_single, _Problem, _terms

#: Largest share of bootstrap rounds that may fail (no finite MLE, no convergence) before
#: the bootstrap interval is refused: the kept rounds are conditioned on a finite MLE, and
#: beyond a few per cent that conditioning visibly narrows the interval.
MAX_BOOT_FAILED = 0.10


def _unit_scores(pr: _Problem, theta: np.ndarray, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Score contribution of one vote of each outcome on each pair, at ``theta``.

    Returns ``gd (3, P)`` (derivative of the vote's log-likelihood in ``d = s_i − s_j``)
    and ``gt (3, P)`` (in the tie parameter; zeros for plain BT), rows = win of i, tie,
    win of j. Under ``ties="split"`` a tie is half a win for each side.
    """
    s = theta[: pr.n]
    d = (s[pr.i] - s[pr.j])[None, :]
    tie = theta[pr.n : pr.n + 1][None, :] if pr.model != "bt" else None
    gd = np.zeros((3, len(pr.i)))
    gt = np.zeros((3, len(pr.i)))
    for k in range(3):
        unit = [np.zeros_like(d) for _ in range(3)]
        unit[k] = np.ones_like(d)
        _, gdk, gtk, _, _, _ = _terms(pr.model, d, tie, *unit)
        gd[k] = gdk[0]
        if gtk is not None:
            gt[k] = gtk[0]
    if ties == "split":
        gd[1] = (gd[0] + gd[2]) / 2
    return gd, gt


def _rater_scores(pr: _Problem, theta: np.ndarray, ties: str, per_rater: sparse.csr_array) -> np.ndarray:
    """Each rater's contribution ``g_r`` to the score vector at ``theta``: (raters, m).

    ``g_r`` is linear in the rater's counts: every stored count ``c`` of outcome ``o`` on
    pair ``p`` adds ``c·gd[o, p]`` to ``s_i``, ``−c·gd[o, p]`` to ``s_j`` and ``c·gt[o, p]``
    to the tie parameter — three weighted bincounts over the count matrix's entries.
    """
    gd, gt = _unit_scores(pr, theta, ties)
    counts = per_rater.tocoo()
    n_pairs = len(pr.i)
    outcome, pair = counts.col // n_pairs, counts.col % n_pairs
    d = counts.data * gd[outcome, pair]
    base = counts.row.astype(np.int64) * pr.m
    size = per_rater.shape[0] * pr.m
    g = np.bincount(base + pr.i[pair], d, size) - np.bincount(base + pr.j[pair], d, size)
    if pr.model != "bt":
        g += np.bincount(base + pr.n, counts.data * gt[outcome, pair], size)
    return g.reshape(per_rater.shape[0], pr.m)


def _sandwich(info: np.ndarray | sparse.csr_array, g: np.ndarray, n: int) -> np.ndarray:
    """A factor ``F`` (n, raters) of the cluster-robust covariance of the centred scores:
    ``F Fᵀ = c · J⁺ (Σ g_r g_rᵀ) J⁺``.

    Solved in the parametrisation with ``s_0 = 0`` (``J`` without row and column 0 is
    positive definite when the graph is connected, so a Cholesky factor serves), then
    centred: the centred scores are a linear map of the anchored ones, so the map carries
    the covariance over exactly. ``c = G/(G−1)`` (CR1).
    """
    dense = info.toarray() if sparse.issparse(info) else np.asarray(info)
    # The information matrix is finite by construction: skip the finiteness scans of 10⁷ cells.
    factor = linalg.cho_factor(dense[1:, 1:], check_finite=False)
    a = np.zeros((dense.shape[0], g.shape[0]))
    a[1:] = linalg.cho_solve(factor, g[:, 1:].T, check_finite=False)
    n_raters = g.shape[0]
    return np.sqrt(n_raters / (n_raters - 1)) * (a[:n] - a[:n].mean(axis=0))


def _gram(f: np.ndarray) -> np.ndarray:
    """``F Fᵀ`` by the symmetric rank-k update: half the work of a general product."""
    upper = linalg.blas.dsyrk(1.0, np.asfortranarray(f))  # its lower triangle is left 0
    full = upper + upper.T
    np.fill_diagonal(full, np.diag(upper))
    return full


def _floor(v: np.ndarray, v_model: np.ndarray) -> np.ndarray:
    """``V + (V_model − V)_+``: no direction gets a smaller variance than the model gives.

    The result is positive semi-definite and ⪰ both inputs (Löwner order); it differs
    from ``V`` only where the panel looks less variable than independent votes would be.
    """
    diff = v_model - v
    w, q = np.linalg.eigh((diff + diff.T) / 2)
    keep = w > 1e-12 * max(1.0, float(np.abs(w).max()))
    return v + (q[:, keep] * w[keep]) @ q[:, keep].T


def _cluster_cov(
    pr: _Problem,
    ties: str,
    info: np.ndarray | sparse.csr_array,
    theta: np.ndarray,
    rater_counts: VoteCounts,
    v_model: np.ndarray | None,
    notes: list[str],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Rater-clustered covariance of the centred scores, floored at ``v_model`` when given —
    or, without ``v_model`` (large problems), only its factor ``F`` (``V = F Fᵀ``), from
    which the intervals need just the row norms; the n × n matrix is formed on demand.

    NaN (and a note) with fewer than 2 raters: one cluster says nothing about the spread
    between clusters.
    """
    g = _rater_scores(pr, theta, ties, rater_counts.per_rater)
    g = g[np.asarray(rater_counts.per_rater.sum(axis=1)).ravel() > 0]
    if len(g) < 2:
        notes.append(f"{len(g)} rater: a rater-clustered interval needs at least 2 raters (reported as NaN)")
        return np.full((pr.n, pr.n), np.nan), None
    f = _sandwich(info, g, pr.n)
    return (None, f) if v_model is None else (_floor(_gram(f), v_model), None)


def _finite_mle(pr: _Problem, counts: np.ndarray) -> np.ndarray:
    """Which count sets ``(B, P, 3)`` have a finite maximum-likelihood estimate (B,) bool.

    The condition of :func:`check_graph` (the "did not lose to" graph strongly connected;
    with a tie model also at least one tie and one decided vote), per set. Sets in which
    every pair of the full data still goes both ways are strongly connected at once;
    only the others need a graph search.
    """
    a, t, b = counts[..., 0], counts[..., 1], counts[..., 2]
    ok = np.ones(counts.shape[0], dtype=bool)
    tie_both = np.zeros_like(a, dtype=bool)
    if pr.model != "bt":
        ok &= (t.sum(axis=1) > 0) & ((a + b).sum(axis=1) > 0)
        tie_both = t > 0
    fwd, bwd = (a > 0) | tie_both, (b > 0) | tie_both
    for k in np.flatnonzero(ok & ~(fwd & bwd).all(axis=1)):
        rows = np.concatenate([pr.j[fwd[k]], pr.i[bwd[k]]])
        cols = np.concatenate([pr.i[fwd[k]], pr.j[bwd[k]]])
        ok[k] = _components(pr.n, rows, cols, strong=True)[0] == 1
    return ok


def _bootstrap(
    pr: _Problem,
    model: str,
    per_rater: sparse.csr_array,
    n_pairs: int,
    theta_hat: np.ndarray,
    n_boot: int,
    seed: int | None,
    use_sparse: bool,
) -> tuple[np.ndarray, int]:
    """Rater-cluster bootstrap: centred score replicates (kept rounds, n) and the number of
    failed rounds (no finite MLE, or Newton did not converge)."""
    n_raters = per_rater.shape[0]
    weights = resample.rater_weights(n_raters, n_boot, seed)
    dense_rater = per_rater.toarray() if n_raters * per_rater.shape[1] <= 20_000_000 else None
    # Batch size keeps the (B, m, m) information arrays around 50 MB.
    batch = n_boot if use_sparse else max(1, min(n_boot, 6_000_000 // (pr.m * pr.m + 3 * n_pairs)))
    reps = np.full((n_boot, pr.n), np.nan)
    for start in range(0, n_boot, batch):
        w = weights[start : start + batch]
        counts = w @ dense_rater if dense_rater is not None else (per_rater.T @ w.T).T
        counts = counts.reshape(len(w), 3, n_pairs).transpose(0, 2, 1)
        _, counts = _effective(model, counts)
        finite = _finite_mle(pr, counts)
        if use_sparse:
            for k in np.flatnonzero(finite):
                theta, _, _, _, ok = _newton_single(pr, counts[k], theta_hat, True)
                if ok:
                    reps[start + k] = theta[: pr.n]
        else:
            idx = np.flatnonzero(finite)
            theta, ok = _newton_batched(pr, counts[idx], theta_hat)
            good = ok & np.isfinite(theta).all(axis=1)
            reps[start + idx[good]] = theta[good, : pr.n]
    failed = int(np.isnan(reps).any(axis=1).sum())
    reps = reps[~np.isnan(reps).any(axis=1)]
    return reps - reps.mean(axis=1, keepdims=True), failed


def _boot_refusal(n_raters: int, reps: np.ndarray | None, failed: int, n_boot: int) -> str | None:
    """Why a rater bootstrap cannot give an interval, or ``None`` when it can."""
    if n_raters < 2:
        return f"{n_raters} rater: resampling raters needs at least 2"
    assert reps is not None
    if failed > MAX_BOOT_FAILED * n_boot:
        return (f"{failed} of {n_boot} resampled panels have no finite scores (some condition never wins or "
                f"never loses in them), more than the {MAX_BOOT_FAILED:.0%} allowed: too few raters or votes "
                "for a rater bootstrap")
    flat = [] if len(reps) < 2 else np.flatnonzero(np.ptp(reps, axis=0) <= 1e-12)
    if len(reps) < 2 or len(flat):
        # A zero-width interval is never honest: it only says that every rater's votes leave
        # that score where it is (e.g. every vote a tie), which resampling raters cannot vary.
        return (f"{len(flat) or 'every'} condition(s) get the same score in every resampled panel (e.g. every "
                "vote a tie, or every rater's votes balance out): the bootstrap cannot see their uncertainty")
    return None
