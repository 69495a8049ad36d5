"""Active pair selection and a stopping rule for pairwise studies (power planning: :mod:`analysis.planning`).

Which condition pairs to ask next
---------------------------------
:func:`next_pairs` picks a batch of ``k`` comparisons by **expected information gain**
under the current Bradley–Terry posterior — the idea of ASAP (Mikhailiuk, Wilmot, Perez-Ortiz,
Yue & Mantiuk, "Active sampling for pairwise comparisons via approximate message passing and
information gain maximization", ICPR 2020), implemented here from the idea:

1. **Posterior.** A MAP fit of the Davidson (1970) model with ties (plain BT when the counts
   hold no tie) under a weak Gaussian prior ``s ~ N(0, PRIOR_SD² I)`` (and
   ``κ = log ν ~ N(0, PRIOR_SD²)``), by Newton's method on the count matrices; the Laplace
   approximation (Bishop 2006, *PRML* §4.4) gives ``s | votes ≈ N(μ, Σ)`` with ``Σ`` the
   inverse of the negative Hessian of the log-posterior at the mode (its score block after
   the tie parameter is integrated out, a Schur complement).
2. **Information of one comparison.** For ``d = s_i − s_j`` Davidson gives
   ``P(i ≻ j) = e^{d/2}/D``, ``P(tie) = ν/D``, ``P(j ≻ i) = e^{−d/2}/D``,
   ``D = e^{d/2} + e^{−d/2} + ν``; one comparison carries the Fisher information
   ``w(d) = [(P_w + P_l) − (P_w − P_l)²]/4`` about ``d`` (``= p(1 − p)`` without ties), the
   variance of the score ``(1[i wins] − 1[j wins])/2``. In the linear-Gaussian (Laplace)
   approximation an observation of pair ``x = e_i − e_j`` is ``y = xᵀs + ε``, ``Var ε = 1/w``,
   and its expected information gain about a linear function ``Ls`` of the scores is the
   Gaussian mutual information (Chaloner & Verdinelli 1995, *Stat. Sci.* 10:273, §2.2;
   Cover & Thomas 2006, eq. 8.56)::

       I(y; Ls) = ½ log[ (xᵀΣx + 1/w) / (xᵀΣx − xᵀMx + 1/w) ],   M = ΣLᵀ(LΣLᵀ)⁻¹LΣ.

   With ``L`` the identity this is ASAP's gain on the whole score vector,
   ``½ log(1 + w·xᵀΣx)``.
3. **What the study needs.** A study stops when every adjacent pair of its ranking is
   separated (:func:`stopping_state`), so the information that matters is about the pairs
   that are *not yet* separated: ``L`` spans the differences ``s_i − s_j`` of every pair
   whose Holm-adjusted z-test under the posterior (the test :mod:`analysis.ranking` makes)
   is not significant at ``alpha``. Separated pairs drop out of the target, which is what
   makes the design spend few votes on far-apart conditions and many on close ones. When
   every pair is separated the target is the whole score vector (plain ASAP).
4. **Batch.** Greedy: pick the pair of largest gain, update ``Σ`` as if it had been observed
   (Sherman–Morrison; the mean stays — the outcome is unknown), update ``M`` by the matching
   rank-one formula, and repeat; the set of unseparated pairs is re-evaluated on the updated
   ``Σ`` as the batch grows. Every in-flight comparison (``pending``) enters ``Σ`` the same way
   first. Diminishing returns spread the batch over pairs; the greedy choice is the standard
   approximation of batch-mode Bayesian design (the gain is submodular for Gaussian models,
   Krause & Guestrin 2005). Up to ``MAX_STEPS`` greedy steps are taken; a larger batch is
   picked in blocks of ``ceil(k / MAX_STEPS)`` comparisons of one pair per step.

The MAP fit is written here rather than taken from :func:`analysis.bradley_terry.fit_counts`:
a selection needs scores from the first vote on, when the comparison graph is disconnected
or one condition has won everything and the maximum-likelihood fit does not exist
(:class:`~analysis.bradley_terry.ComparisonGraphError`); the prior makes the MAP finite always.

When to stop
------------
:func:`stopping_state` uses the project's own fit and ranking rules
(:func:`analysis.bradley_terry.fit_counts` → :func:`analysis.ranking.rank`, Holm-corrected
z-tests) so that the console, the report and the stopping rule say the same.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg, special
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from analysis import bradley_terry as bt
from analysis import ranking

#: Sd of the weak Gaussian prior on the scores (and on the log tie parameter), in BT units.
PRIOR_SD = 3.0

#: Greedy steps per batch at most; a larger batch is chosen in blocks of one pair per step.
MAX_STEPS = 100

_NEWTON_TOL = 1e-9
_NEWTON_MAX = 100


# ---------------------------------------------------------------------------------------------
# Input checks (once, at the boundary)
# ---------------------------------------------------------------------------------------------


def _count_matrix(x: object, name: str, n: int | None = None) -> np.ndarray:
    """A square, finite, non-negative count matrix with a zero diagonal, as float."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric n×n matrix: {exc}") from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square n×n matrix, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must be {n}×{n} like wins, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must hold finite counts")
    if (a < 0).any():
        raise ValueError(f"{name} must hold non-negative counts")
    if (np.diag(a) != 0).any():
        raise ValueError(f"{name} has a non-zero diagonal: a condition cannot be compared with itself")
    return a


def _check_counts(wins: object, ties: object) -> tuple[np.ndarray, np.ndarray]:
    w = _count_matrix(wins, "wins")
    if w.shape[0] < 2:
        raise ValueError("at least 2 conditions are needed")
    t = _count_matrix(ties, "ties", w.shape[0])
    if not np.allclose(t, t.T, rtol=1e-9, atol=1e-12):
        raise ValueError("ties must be symmetric: ties[i, j] = ties[j, i] = ties between i and j")
    return w, t


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float; ValueError unless it lies in (0, 1) (shared with :mod:`analysis.planning`)."""
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


# ---------------------------------------------------------------------------------------------
# The Laplace-approximated posterior
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Posterior:
    """MAP scores, their Laplace covariance and the tie parameter (``nu = 0``: plain BT)."""

    mean: np.ndarray
    cov: np.ndarray
    nu: float


def _davidson_probs(d: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P(i ≻ j), P(tie), P(j ≻ i)`` for differences ``d`` (Davidson 1970; BT when ``nu = 0``)."""
    h = np.clip(d / 2.0, -350.0, 350.0)
    m = np.abs(h)  # divide through by e^{|d|/2} for stability
    ew, el = np.exp(h - m), np.exp(-h - m)
    en = nu * np.exp(-m)
    den = ew + el + en
    return ew / den, en / den, el / den


def fisher_weight(d: np.ndarray | float, nu: float = 0.0) -> np.ndarray:
    """Fisher information about ``d = s_i − s_j`` in one Davidson comparison.

    Parameters
    ----------
    d : float or ndarray
        Score differences (BT units).
    nu : float
        Davidson tie parameter ``ν ≥ 0`` (0: plain Bradley–Terry).

    Returns
    -------
    ndarray
        ``w(d) = [(P_w + P_l) − (P_w − P_l)²] / 4`` — the variance of the score
        ``(1[i wins] − 1[j wins])/2`` of the Davidson log-likelihood (Davidson 1970,
        *JASA* 65:317); ``p(1 − p)`` without ties.
    """
    pw, _, pl = _davidson_probs(np.asarray(d, dtype=float), float(nu))
    return ((pw + pl) - (pw - pl) ** 2) / 4.0


def _posterior(wins: np.ndarray, ties: np.ndarray, pending: np.ndarray | None) -> _Posterior:
    """Newton MAP of the Davidson model under the weak prior, and its Laplace covariance."""
    n = wins.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    a, b, t = wins[iu, ju], wins[ju, iu], ties[iu, ju]
    tot = a + b + t
    seen = tot > 0
    i, j, a, b, t, tot = iu[seen], ju[seen], a[seen], b[seen], t[seen], tot[seen]
    with_ties = bool(t.sum() > 0)
    m = n + 1 if with_ties else n
    prec0 = 1.0 / PRIOR_SD**2

    def evaluate(theta: np.ndarray, need: bool = True):
        s = theta[:n]
        kappa = theta[n] if with_ties else -np.inf
        nu = float(np.exp(kappa)) if with_ties else 0.0
        d = s[i] - s[j]
        pw, pt, pl = _davidson_probs(d, nu)
        log_den = np.logaddexp(np.logaddexp(d / 2, -d / 2), kappa) if with_ties else np.logaddexp(d / 2, -d / 2)
        ll = float(np.sum((a - b) * d / 2 - tot * log_den) + (np.sum(t) * kappa if with_ties else 0.0))
        ll -= 0.5 * prec0 * float(theta @ theta)
        if not need:
            return ll, None, None
        gd = (a - b) / 2 - tot * (pw - pl) / 2
        grad = np.zeros(m)
        grad[:n] = np.bincount(i, gd, n) - np.bincount(j, gd, n)
        hdd = tot * ((pw + pl) - (pw - pl) ** 2) / 4  # minus the second derivative in d
        info = np.zeros((m, m))
        diag = np.bincount(i, hdd, n) + np.bincount(j, hdd, n)
        info[i, j] = -hdd  # each compared pair once (i < j)
        info[j, i] = -hdd
        info[np.arange(n), np.arange(n)] += diag
        if with_ties:
            grad[n] = float(np.sum(t - tot * pt))
            info[n, n] = float(np.sum(tot * pt * (1 - pt)))
            cross = -tot * pt * (pw - pl) / 2  # minus ∂²/∂d∂κ
            c = np.bincount(i, cross, n) - np.bincount(j, cross, n)
            info[n, :n] = info[:n, n] = c
        grad -= prec0 * theta
        info[np.arange(m), np.arange(m)] += prec0
        return ll, grad, info

    theta = np.zeros(m)
    if with_ties:
        tau = min(max(float(t.sum() / tot.sum()), 1e-3), 1 - 1e-3)
        theta[n] = math.log(2 * tau / (1 - tau))  # tie share at d = 0 is ν/(2 + ν)
    ll, grad, info = evaluate(theta)
    for _ in range(_NEWTON_MAX):
        step = linalg.cho_solve(linalg.cho_factor(info), grad)
        scale = 1.0
        for _ in range(50):  # backtracking: the log-posterior is strictly concave
            ll_new, _, _ = evaluate(theta + scale * step, need=False)
            if ll_new >= ll - 1e-12 * max(1.0, abs(ll)):
                break
            scale /= 2
        theta = theta + scale * step
        ll, grad, info = evaluate(theta)
        if np.max(np.abs(scale * step)) < _NEWTON_TOL:
            break
    nu = float(np.exp(theta[n])) if with_ties else 0.0
    if pending is not None:
        # In-flight comparisons: their expected information, as if already observed.
        pc = pending + pending.T
        pp = pc[iu, ju]
        on = pp > 0
        if on.any():
            pi, pj = iu[on], ju[on]
            hw = pp[on] * fisher_weight(theta[pi] - theta[pj], nu)
            info[pi, pj] -= hw
            info[pj, pi] -= hw
            diag = np.bincount(pi, hw, n) + np.bincount(pj, hw, n)
            info[np.arange(n), np.arange(n)] += diag
    # The score block of the inverse = the inverse of the Schur complement (κ integrated out).
    cov = linalg.cho_solve(linalg.cho_factor(info), np.eye(m)[:, :n])[:n]
    cov = (cov + cov.T) / 2
    return _Posterior(theta[:n].copy(), cov, nu)


def _unseparated(mean: np.ndarray, cov: np.ndarray, iu: np.ndarray, ju: np.ndarray, alpha: float) -> np.ndarray:
    """Mask of pairs a Holm-corrected two-sided z-test under ``N(mean, cov)`` does not separate.

    The test of :func:`analysis.ranking.pairwise_tests`, on the posterior instead of a fit.
    """
    dg = np.diag(cov)
    var = np.clip(dg[iu] + dg[ju] - 2 * cov[iu, ju], 1e-300, None)
    z = np.abs(mean[iu] - mean[ju]) / np.sqrt(var)
    p = 2 * special.ndtr(-z)
    return ranking.holm(p) >= alpha


def _target(cov: np.ndarray, unsep: np.ndarray, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    """``M = ΣLᵀ(LΣLᵀ)⁻¹LΣ`` for ``L`` spanning the differences of the unseparated pairs.

    The span of ``{e_i − e_j}`` over a set of pairs is, per connected component ``C`` of the
    graph of those pairs, the sum-zero vectors on ``C``: its basis ``e_{c_0} − e_{c_r}``.
    With no unseparated pair the target is every score (``M = Σ``).
    """
    n = cov.shape[0]
    if not unsep.any():
        return cov.copy()
    graph = coo_array((np.ones(int(unsep.sum())), (iu[unsep], ju[unsep])), shape=(n, n))
    n_comp, label = connected_components(graph, directed=False)
    rows_a, rows_b = [], []
    for c in range(n_comp):
        members = np.flatnonzero(label == c)
        if len(members) > 1:
            rows_a += [members[0]] * (len(members) - 1)
            rows_b += list(members[1:])
    ra, rb = np.asarray(rows_a), np.asarray(rows_b)
    b = cov[ra] - cov[rb]                       # L Σ
    g = b[:, ra] - b[:, rb]                     # L Σ Lᵀ
    g = (g + g.T) / 2
    sol = linalg.cho_solve(linalg.cho_factor(g), b)
    m = b.T @ sol
    return (m + m.T) / 2


def next_pairs(
    wins: np.ndarray,
    ties: np.ndarray,
    k: int,
    *,
    pending: np.ndarray | None = None,
    seed: int | None = None,
    alpha: float = 0.05,
) -> list[tuple[int, int]]:
    """The next ``k`` comparisons to ask, by expected information gain (greedy batch).

    See the module docstring for the model and the criterion (ASAP's expected information
    gain under a Laplace-approximated Davidson–Bradley–Terry posterior, aimed at the pairs the
    ranking has not separated yet).

    Parameters
    ----------
    wins : ndarray, shape (n, n)
        ``wins[i, j]`` = votes preferring ``i`` over ``j`` (valid main votes).
    ties : ndarray, shape (n, n)
        Symmetric: ``ties[i, j] = ties[j, i]`` = "no preference" votes between ``i`` and ``j``.
        Ties enter the Davidson model (a tie is evidence the two are close, and it tells the
        tie parameter); without any tie the model is plain Bradley–Terry.
    k : int
        Comparisons to choose (≥ 0). The same pair may appear more than once.
    pending : ndarray, shape (n, n), optional
        Comparisons assigned but not answered yet: ``pending[i, j] + pending[j, i]`` of pair
        ``{i, j}`` (count each once, in either cell). They are treated as observed (their
        information, not an outcome) before the batch is chosen.
    seed : int, optional
        Breaks exact ties between equally good pairs (e.g. before any vote); the same inputs
        and seed give the same batch.
    alpha : float
        Level of the Holm-corrected tests that decide which pairs are still unseparated.

    Returns
    -------
    list of (int, int)
        ``k`` pairs ``(i, j)`` with ``i < j``, in the order chosen (most informative first).

    Raises
    ------
    ValueError
        On a matrix that is not n×n, negative or non-finite counts, a non-zero diagonal,
        asymmetric ties, fewer than 2 conditions, a negative ``k`` or ``alpha`` outside (0, 1).
    """
    w_mat, t_mat = _check_counts(wins, ties)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    alpha = check_alpha(alpha)
    n = w_mat.shape[0]
    pend = None if pending is None else _count_matrix(pending, "pending", n)
    if k == 0:
        return []
    post = _posterior(w_mat, t_mat, pend)
    iu, ju = np.triu_indices(n, k=1)
    mu, sigma = post.mean, post.cov.copy()
    inv_w = 1.0 / np.maximum(fisher_weight(mu[iu] - mu[ju], post.nu), 1e-12)
    jitter = 1.0 + 1e-9 * np.random.default_rng(seed).random(len(iu))
    block = math.ceil(k / MAX_STEPS)
    recheck = 1 if n <= 60 else max(1, MAX_STEPS // 10)
    unsep = _unseparated(mu, sigma, iu, ju, alpha)
    m_mat = _target(sigma, unsep, iu, ju)
    picks: list[tuple[int, int]] = []
    step = 0
    while len(picks) < k:
        if step and step % recheck == 0:
            now = _unseparated(mu, sigma, iu, ju, alpha)
            if not np.array_equal(now, unsep):
                unsep, m_mat = now, _target(sigma, now, iu, ju)
        ds, dm = np.diag(sigma), np.diag(m_mat)
        v = ds[iu] + ds[ju] - 2 * sigma[iu, ju]
        q = np.clip(dm[iu] + dm[ju] - 2 * m_mat[iu, ju], 0.0, None)
        gain = 0.5 * np.log((v + inv_w) / np.maximum(v - q + inv_w, 1e-300))
        c = int(np.argmax(gain * jitter))
        i, j = int(iu[c]), int(ju[c])
        copies = min(block, k - len(picks))
        picks += [(i, j)] * copies
        # Sherman–Morrison: Σ' = Σ − β g gᵀ with g = Σx, β = W/(1 + W·xᵀΣx), W = copies·w.
        big_w = copies / inv_w[c]
        g = sigma[:, i] - sigma[:, j]
        beta = big_w / (1.0 + big_w * v[c])
        mx = m_mat[:, i] - m_mat[:, j]
        qc = float(mx[i] - mx[j])
        gamma = beta / (1.0 - beta * qc)
        r = mx - beta * qc * g
        # M' = M − β(m gᵀ + g mᵀ) + β² q g gᵀ + γ r rᵀ, γ = β/(1 − βq), r = m − βq g (m = Mx, q = xᵀMx):
        # Sherman–Morrison on LΣ'Lᵀ = LΣLᵀ − β (LΣx)(LΣx)ᵀ, multiplied out.
        vecs = np.column_stack([mx, g, r])
        coef = np.array([[0.0, -beta, 0.0], [-beta, beta**2 * qc, 0.0], [0.0, 0.0, gamma]])
        m_mat += (vecs @ coef) @ vecs.T
        sigma -= beta * np.outer(g, g)
        step += 1
    return picks


# ---------------------------------------------------------------------------------------------
# Stopping rule
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoppingState:
    """Whether a study can stop, and why.

    Attributes
    ----------
    done : bool
        Every adjacent pair of the current ranking is separated at ``alpha``, or the
        budget is spent.
    reason : {"separated", "budget"} or None
        Why it is done (``"separated"`` wins when both hold); ``None`` while running.
    unresolved : tuple of (int, int)
        Adjacent pairs of the current ranking not yet separated by votes, as
        ``(upper, lower)`` condition indices (better one first), best first.
    votes_used : int
    budget : int or None
    votes_saved : int or None
        ``budget − votes_used`` when done by separation with a budget; else ``None``.
    order : tuple of int
        The current ranking, best first (condition indices).
    """

    done: bool
    reason: Literal["separated", "budget"] | None
    unresolved: tuple[tuple[int, int], ...]
    votes_used: int
    budget: int | None
    votes_saved: int | None
    order: tuple[int, ...] = ()


def _ranking_of_counts(w_mat: np.ndarray, t_mat: np.ndarray, alpha: float
                       ) -> tuple[list[int], list[tuple[int, int]]]:
    """Order and unseparated adjacent pairs by the project's fit and ranking.

    :func:`analysis.bradley_terry.fit_counts` (Davidson ties, model-based covariance: counts
    carry no rater ids) and :func:`analysis.ranking.rank`. When no maximum-likelihood fit
    exists yet (disconnected comparisons, a condition that never lost or never won, no
    votes), nothing is separated and the order is the MAP order of :func:`next_pairs`.
    """
    n = w_mat.shape[0]
    names = [str(c) for c in range(n)]
    try:
        fit = bt.fit_counts(names, w_mat, t_mat, tie_model="davidson", ci="hessian", alpha=alpha)
        rk = ranking.rank(fit, alpha=alpha)
    except (bt.ComparisonGraphError, ValueError, np.linalg.LinAlgError):
        order = [int(c) for c in np.argsort(-_posterior(w_mat, t_mat, None).mean, kind="stable")]
        return order, list(itertools.pairwise(order))
    order = [int(c) for c in rk.table["condition"]]
    adj = rk.adjacent
    open_ = adj["separated_by"] != "votes"
    pairs = [(int(u), int(lo)) for u, lo in zip(adj.loc[open_, "upper"], adj.loc[open_, "lower"], strict=True)]
    return order, pairs


def stopping_state(
    wins: np.ndarray,
    ties: np.ndarray,
    *,
    alpha: float = 0.05,
    votes_used: int,
    budget: int | None,
) -> StoppingState:
    """The stopping rule: every adjacent pair separated at ``alpha``, or the budget spent.

    "Separated" is decided by the project's own fit and ranking rules — a Davidson fit of the
    counts (:func:`analysis.bradley_terry.fit_counts`, model-based intervals since counts carry
    no rater ids) ranked by :func:`analysis.ranking.rank` (two-sided z-tests on score
    differences, Holm-corrected over all pairs): an adjacent pair is separated when its
    ranking row says ``separated_by == "votes"``, so the console and a report of the same
    counts with ``ci="model"`` agree.

    Parameters
    ----------
    wins, ties : ndarray, shape (n, n)
        As for :func:`next_pairs`.
    alpha : float
        Family-wise level of the ranking's tests.
    votes_used : int
        Valid votes collected so far (≥ 0).
    budget : int or None
        Vote budget (> 0), or ``None`` for none.

    Returns
    -------
    StoppingState

    Raises
    ------
    ValueError
        Malformed counts (as :func:`next_pairs`), ``alpha`` outside (0, 1), a negative
        ``votes_used`` or a budget that is not a positive integer.
    """
    w_mat, t_mat = _check_counts(wins, ties)
    alpha = check_alpha(alpha)
    if isinstance(votes_used, bool) or not isinstance(votes_used, int | np.integer) or votes_used < 0:
        raise ValueError(f"votes_used must be a non-negative integer, got {votes_used!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget <= 0):
        raise ValueError(f"budget must be a positive integer or None, got {budget!r}")
    order, open_pairs = _ranking_of_counts(w_mat, t_mat, alpha)
    separated = not open_pairs
    spent = budget is not None and votes_used >= budget
    reason: Literal["separated", "budget"] | None = "separated" if separated else ("budget" if spent else None)
    saved = int(budget - votes_used) if separated and budget is not None else None
    return StoppingState(done=reason is not None, reason=reason, unresolved=tuple(open_pairs),
                         votes_used=int(votes_used), budget=None if budget is None else int(budget),
                         votes_saved=saved, order=tuple(order))


# ---------------------------------------------------------------------------------------------
# Power planning
# ---------------------------------------------------------------------------------------------
