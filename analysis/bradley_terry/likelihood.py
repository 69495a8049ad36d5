"""The Bradley–Terry likelihood with ties (plain, Davidson, Rao–Kupper) and Newton's method on it,
for one fit (dense or sparse CG) or many bootstrap rounds at once (see :mod:`analysis.bradley_terry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg
from scipy.special import expit, log_expit

_MAX_ITER = 100


_BOOT_MAX_ITER = 40


# Newton converges quadratically: once a step is below 1e-6 the point it lands on is
# within ~1e-12 of the optimum, so stopping there saves a confirming iteration.
_TOL = 1e-6


_BOOT_TOL = 1e-6


def _terms(model: str, d: np.ndarray, tie: np.ndarray, a: np.ndarray, t: np.ndarray, b: np.ndarray):
    """Per-pair log-likelihood and derivatives in ``d`` and the tie parameter.

    Returns ``ll (B,)`` and per-pair ``gd, gt, hdd, htt, hdt`` (second derivatives of the
    log-likelihood, i.e. negative information).
    """
    if model == "bt":
        p = expit(d)
        ll = (a * log_expit(d) + b * log_expit(-d)).sum(axis=-1)
        nn = a + b
        return ll, a - nn * p, None, -nn * p * (1 - p), None, None
    if model == "davidson":
        nu = np.exp(tie)
        x = np.abs(d)
        e1, eh = np.exp(-x), np.exp(-x / 2)
        dp = 1 + e1 + nu * eh  # D·e^{-|d|/2}, kept O(1) for stability
        nn = a + t + b
        s = np.sign(d) * (1 - e1) / (2 * dp)
        c = (1 + e1) / (2 * dp)
        v = nu * eh / dp
        ll = ((a - b) * d / 2 + t * tie - nn * (x / 2 + np.log(dp))).sum(axis=-1)
        return ll, (a - b) / 2 - nn * s, t - nn * v, -nn * (c / 2 - s * s), -nn * v * (1 - v), nn * s * v
    # Rao–Kupper, parameter eta > 0.
    eta = tie
    u1, u2 = d - eta, -d - eta
    q1, q2 = expit(-u1), expit(-u2)
    r1, r2 = q1 * (1 - q1), q2 * (1 - q2)
    x = np.abs(d)
    m = np.maximum(x, eta)
    ep, em, fp, fm = np.exp(d - m), np.exp(-d - m), np.exp(eta - m), np.exp(-eta - m)
    den = ep + em + fp + fm  # 2·(cosh d + cosh η)·e^{-m}
    sd, cd = (ep - em) / den, (ep + em) / den
    sh, ch = (fp - fm) / den, (fp + fm) / den
    log_a = m + np.log(den) - np.log(2.0)
    log_sinh = eta + np.log1p(-np.exp(-2 * eta)) - np.log(2.0)
    ll = (a * log_expit(u1) + b * log_expit(u2) + t * (log_sinh - log_a)).sum(axis=-1)
    coth = 1.0 / np.tanh(eta)
    csch2 = 1.0 / np.sinh(eta) ** 2
    gd = a * q1 - b * q2 - t * sd
    gt = -a * q1 - b * q2 + t * (coth - sh)
    hdd = -a * r1 - b * r2 + t * (-cd + sd * sd)
    htt = -a * r1 - b * r2 + t * (-csch2 - ch + sh * sh)
    hdt = a * r1 - b * r2 + t * sd * sh
    return ll, gd, gt, hdd, htt, hdt


@dataclass(frozen=True)
class _Problem:
    """What Newton needs: pair structure, model and counts (B, P) for each of a, t, b."""

    model: str
    n: int
    i: np.ndarray
    j: np.ndarray

    @property
    def m(self) -> int:
        return self.n + (self.model != "bt")


def _evaluate(pr: _Problem, theta: np.ndarray, a, t, b, need: bool = True):
    """Log-likelihood (B,), gradient (B, m) and information pieces at ``theta`` (B, m)."""
    s = theta[:, : pr.n]
    d = s[:, pr.i] - s[:, pr.j]
    tie = theta[:, pr.n : pr.n + 1] if pr.model != "bt" else None
    ll, gd, gt, hdd, htt, hdt = _terms(pr.model, d, tie, a, t, b)
    if not need:
        return ll, None, None
    bsz = theta.shape[0]
    off = (np.arange(bsz) * pr.n)[:, None]
    gs = (np.bincount((off + pr.i).ravel(), gd.ravel(), bsz * pr.n)
          - np.bincount((off + pr.j).ravel(), gd.ravel(), bsz * pr.n)).reshape(bsz, pr.n)
    grad = gs if pr.model == "bt" else np.concatenate([gs, gt.sum(axis=1, keepdims=True)], axis=1)
    return ll, grad, (hdd, htt, hdt)


def _info_dense(pr: _Problem, pieces, bsz: int) -> np.ndarray:
    """Observed information ``J`` (B, m, m) assembled from per-pair second derivatives."""
    hdd, htt, hdt = pieces
    n, m = pr.n, pr.m
    w = -hdd  # information weight of each pair
    base = (np.arange(bsz) * m * m)[:, None]
    idx = np.concatenate([base + pr.i * m + pr.i, base + pr.j * m + pr.j,
                          base + pr.i * m + pr.j, base + pr.j * m + pr.i], axis=1)
    val = np.concatenate([w, w, -w, -w], axis=1)
    info = np.bincount(idx.ravel(), val.ravel(), bsz * m * m).reshape(bsz, m, m)
    if pr.model != "bt":
        cross = (np.bincount((np.arange(bsz)[:, None] * n + pr.i).ravel(), (-hdt).ravel(), bsz * n)
                 - np.bincount((np.arange(bsz)[:, None] * n + pr.j).ravel(), (-hdt).ravel(), bsz * n))
        cross = cross.reshape(bsz, n)
        info[:, :n, n] = cross
        info[:, n, :n] = cross
        info[:, n, n] = -htt.sum(axis=1)
    return info


def _u(pr: _Problem) -> np.ndarray:
    u = np.zeros(pr.m)
    u[: pr.n] = 1.0 / np.sqrt(pr.n)
    return u


class _SparsePattern:
    """CSR structure of the information matrix, built once per problem.

    Pairs are unique, so off-diagonal cells never collide; diagonal and tie cells are
    summed before scattering. Each Newton step only refills ``data`` (a gather), instead
    of re-sorting ~10⁶ COO entries.
    """

    def __init__(self, pr: _Problem):
        n, m, k = pr.n, pr.m, len(pr.i)
        idx = np.arange(m)
        rows = [pr.i, pr.j, idx]
        cols = [pr.j, pr.i, idx]
        if pr.model != "bt":
            rows += [np.arange(n), np.full(n, n)]
            cols += [np.full(n, n), np.arange(n)]
        rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
        slots = sparse.csr_array(
            (np.arange(1, len(rows_a) + 1, dtype=float), (rows_a, cols_a)), shape=(m, m)
        )
        self.order = slots.data.astype(np.int64) - 1  # csr slot → entry number
        self.indices, self.indptr = slots.indices, slots.indptr
        self.shape, self.n, self.k, self.model = (m, m), n, k, pr.model
        self.i, self.j = pr.i, pr.j

    def build(self, pieces) -> sparse.csr_array:
        """Information matrix for the per-pair second derivatives ``pieces`` of one fit."""
        hdd, htt, hdt = (None if x is None else x[0] for x in pieces)
        n, m = self.n, self.shape[0]
        w = -hdd
        diag = np.bincount(self.i, w, m) + np.bincount(self.j, w, m)
        values = [-w, -w, diag]
        if self.model != "bt":
            diag[n] = -htt.sum()
            cross = np.bincount(self.i, -hdt, n) - np.bincount(self.j, -hdt, n)
            values += [cross, cross]
        data = np.concatenate(values)[self.order]
        return sparse.csr_array((data, self.indices, self.indptr), shape=self.shape)


def _solve_sparse(info: sparse.csr_array, u: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``(J + u uᵀ) δ = g`` by Jacobi-preconditioned CG (J sparse, rank-one term implicit)."""
    m = len(u)
    op = splinalg.LinearOperator((m, m), matvec=lambda x: info @ x + u * (u @ x), dtype=float)
    diag = info.diagonal() + u * u
    pre = splinalg.LinearOperator((m, m), matvec=lambda x: x / diag, dtype=float)
    step, _ = splinalg.cg(op, g, rtol=1e-12, atol=0.0, maxiter=10 * m, M=pre)
    return step


def _newton_single(pr: _Problem, counts: np.ndarray, theta0: np.ndarray, use_sparse: bool):
    """Maximise the log-likelihood from ``theta0`` (m,) with a backtracking line search.

    Returns ``theta, loglik, information (dense or sparse), iterations, converged``.
    """
    a, t, b = (counts[None, :, k] for k in range(3))
    u = _u(pr)
    pattern = _SparsePattern(pr) if use_sparse else None
    theta = theta0[None, :].copy()
    ll, grad, pieces = _evaluate(pr, theta, a, t, b)
    converged = False
    it = 0
    for it in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is reported
        if pattern is not None:
            info = pattern.build(pieces)
            step = _solve_sparse(info, u, grad[0])[None, :]
        else:
            info = _info_dense(pr, pieces, 1)
            step = np.linalg.solve(info + np.outer(u, u)[None], grad[..., None])[..., 0]
        scale = 1.0
        # Rao–Kupper's η must stay positive: go at most 90 % of the way to 0.
        if pr.model == "rao-kupper" and step[0, -1] < 0:
            scale = min(1.0, 0.9 * theta[0, -1] / -step[0, -1])
        # Backtrack only on large steps: close to the optimum of this concave
        # likelihood the full Newton step is always an ascent step.
        for _ in range(60 if np.max(np.abs(step)) > 1e-3 else 0):
            ll_new, _, _ = _evaluate(pr, theta + scale * step, a, t, b, need=False)
            if np.isfinite(ll_new[0]) and ll_new[0] >= ll[0] - 1e-12 * max(1.0, abs(ll[0])):
                break
            scale /= 2
        theta = theta + scale * step
        ll, grad, pieces = _evaluate(pr, theta, a, t, b)
        if np.max(np.abs(scale * step)) < _TOL:
            converged = True
            break
    info = pattern.build(pieces) if pattern is not None else _info_dense(pr, pieces, 1)[0]
    return theta[0], float(ll[0]), info, it, converged


def _newton_batched(pr: _Problem, counts: np.ndarray, theta0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refit many count sets (B, P, 3) at once from a common warm start.

    Plain Newton steps (capped at 2 in any coordinate, η kept positive); returns the
    estimates (B, m) and a converged mask (B,).
    """
    bsz = counts.shape[0]
    a, t, b = counts[:, :, 0], counts[:, :, 1], counts[:, :, 2]
    u = _u(pr)
    uu = np.outer(u, u)[None]
    theta = np.repeat(theta0[None, :], bsz, axis=0)
    active = np.ones(bsz, dtype=bool)
    done = np.zeros(bsz, dtype=bool)
    for _ in range(_BOOT_MAX_ITER):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        th = theta[idx]
        _, grad, pieces = _evaluate(pr, th, a[idx], t[idx], b[idx])
        info = _info_dense(pr, pieces, len(idx))
        try:
            step = np.linalg.solve(info + uu, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(x + uu[0], g, rcond=None)[0] for x, g in zip(info, grad, strict=True)])
        big = np.max(np.abs(step), axis=1, keepdims=True)
        scale = np.minimum(1.0, 2.0 / np.maximum(big, 1e-300))
        if pr.model == "rao-kupper":
            neg = step[:, -1] < 0
            lim = np.where(neg, 0.9 * th[:, -1] / np.where(neg, -step[:, -1], 1.0), 1.0)
            scale = np.minimum(scale, lim[:, None])
        theta[idx] = th + scale * step
        moved = np.max(np.abs(scale * step), axis=1)
        finished = (moved < _BOOT_TOL) & np.isfinite(moved)
        done[idx[finished]] = True
        active[idx[finished | ~np.isfinite(moved)]] = False
    return theta, done


def _effective(model: str, counts: np.ndarray) -> tuple[str, np.ndarray]:
    """Model actually fitted and counts it sees: split ties, or plain BT when no ties."""
    if model == "split":
        a, t, b = counts[..., 0], counts[..., 1], counts[..., 2]
        return "bt", np.stack([a + t / 2, np.zeros_like(t), b + t / 2], axis=-1)
    if counts[..., 1].sum() == 0:
        return "bt", counts
    return model, counts


def _start(model: str, n: int, i: np.ndarray, j: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Start at each condition's smoothed log win/loss ratio and the tie parameter
    matching the overall tie share (saves Newton steps when scores are spread out)."""
    a, t, b = counts[:, 0] + counts[:, 1] / 2, counts[:, 1], counts[:, 2] + counts[:, 1] / 2
    won = np.bincount(i, a, n) + np.bincount(j, b, n)
    lost = np.bincount(i, b, n) + np.bincount(j, a, n)
    s = np.log((won + 0.5) / (lost + 0.5))
    s -= s.mean()
    if model == "bt":
        return s
    tau = t.sum() / counts.sum()
    tau = min(max(tau, 1e-6), 1 - 1e-6)
    # At d = 0: Davidson P(tie) = ν/(2+ν); Rao–Kupper P(tie) = tanh(η/2).
    tie = np.log(2 * tau / (1 - tau)) if model == "davidson" else 2 * np.arctanh(tau)
    return np.append(s, tie)


def _tie_params(model: str, fitted: str, theta: np.ndarray, n: int) -> dict[str, float]:
    if fitted == "bt":
        return {"nu": 0.0} if model == "davidson" else ({"eta": 0.0, "theta": 1.0} if model == "rao-kupper" else {})
    if fitted == "davidson":
        return {"nu": float(np.exp(theta[n]))}
    return {"eta": float(theta[n]), "theta": float(np.exp(theta[n]))}


def _pseudo_inverse(info: np.ndarray | sparse.csr_array, u: np.ndarray) -> np.ndarray:
    """``J⁺ = (J + u uᵀ)⁻¹ − u uᵀ``: covariance under the sum-to-zero constraint."""
    dense = info.toarray() if sparse.issparse(info) else info
    full = np.linalg.inv(dense + np.outer(u, u))
    return full - np.outer(u, u)
