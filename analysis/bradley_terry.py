"""Bradley–Terry scores with ties, honest intervals and a rater-cluster bootstrap.

Model
-----
Condition ``i`` has log-strength ``s_i``; for a pair with ``d = s_i − s_j``:

* ``"davidson"`` (default): ``P(i ≻ j) = e^{d/2} / D``, ``P(tie) = ν / D`` with
  ``D = e^{d/2} + e^{−d/2} + ν`` (Davidson 1970; ``ν`` fitted as ``κ = log ν``).
* ``"rao-kupper"``: ``P(i ≻ j) = σ(d − η)``, ``P(tie) = σ(d + η) − σ(d − η)``, ``η > 0``
  (Rao & Kupper 1967, ``θ = e^η``). This is the ordinal logistic model the simulator
  draws from, so it is unbiased on simulated ties.
* ``"split"``: a tie counts as half a win for each side, then plain BT.

With ``graded=True`` a vote of strength ``k`` (``|pref| = k``, e.g. "strong" = 2 on
``pc5``) counts as ``k`` wins. Without ties in the data every model is plain BT.

Fitting works on sufficient statistics only: per compared pair, the (weighted) wins of
each side and the ties. Newton's method on the concave log-likelihood (in ``(s, κ)``
for Davidson, ``(s, η)`` for Rao–Kupper) with a line search; the sum-to-zero
constraint is handled by solving ``(J + u uᵀ) δ = g`` with ``u = 1/√n`` on the scores
— ``J`` (the observed information) has exactly ``u`` as null vector when the
comparison graph is connected, and ``g ⟂ u``, so ``δ`` is the constrained Newton step.
Up to ``SPARSE_ABOVE`` conditions the system is solved densely; beyond, ``J`` is a
``scipy.sparse`` matrix and the step comes from preconditioned conjugate gradients.

Intervals
---------
One vote's outcome is not independent of the same rater's other votes: raters differ in
how they read the scale, how decisive they are and what they look at. Every interval is
therefore, by default, clustered by rater.

* **Cluster-robust (sandwich), clustered by rater** — ``ci="cluster"``, the default:
  ``V = c · J⁺ (Σ_r g_r g_rᵀ) J⁺`` with ``g_r`` rater r's contribution to the score
  vector at the estimate and ``c = G/(G−1)`` for ``G`` raters (the CR1 small-sample
  factor); intervals ``± t_{G−1, 1−α/2}·se`` (Liang & Zeger 1986, *Biometrika* 73:13;
  Cameron & Miller 2015, *J. Human Resources* 50:317, §II.B and §VI). ``g_r`` is linear in
  the rater's pair counts, so all of it is one sparse product. Up to ``SPARSE_ABOVE``
  conditions ``V`` is floored at the model-based covariance, ``V + (V_H − V)_+`` (the
  positive part of the difference): a panel that looks *less* variable than the model
  allows — one rater, or every vote a tie under ``ties="split"`` — is not credited with
  more precision than the votes' number gives. Fewer than 2 raters: NaN, with a note.
* **Bootstrap over raters** — ``ci="bootstrap"``: per-rater pair counts are precomputed
  once; each round draws ``G − 1`` raters with replacement (:mod:`analysis.resample`;
  all rounds at once, as multinomial weights), forms the
  round's counts by one matrix product and refits by a few batched Newton steps
  warm-started at the full-data estimate. Expanded percentile intervals (percentiles at
  ``Φ(±t_{G−1, 1−α/2})``, Hesterberg 2015, so a panel of ``G`` raters gets its t
  quantile as the clustered interval does). A round whose counts have
  no finite MLE (its win graph is not strongly connected: some group never wins or never
  loses; or, with a tie model, no tie or no decided vote) is detected exactly, left out
  and counted in ``params["boot_failed"]`` with non-converged rounds. When more than
  ``MAX_BOOT_FAILED`` of the rounds fail, or some score does not vary over the kept
  rounds (a zero-width interval), or there are
  fewer than 2 raters, the bootstrap interval is refused: the fit falls back to the
  clustered interval and says why in ``params["boot_refused"]`` and a warning.
* **Hessian (model-based)** — ``ci="hessian"``: ``J⁺`` (Moore–Penrose inverse of the
  observed information, ``(J + u uᵀ)⁻¹ − u uᵀ``), Wald intervals ``± z_{1−α/2}·se``.
  Treats votes as independent: narrower than the truth whenever raters differ. The only
  choice without rater ids (:func:`fit_counts`).

Scores are centred to mean 0, or anchored (``score(anchor) = 0``), optionally on an
Elo-like scale ``1500 + 400/ln 10 · s``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import linalg, sparse, stats
from scipy.sparse import csgraph
from scipy.sparse import linalg as splinalg
from scipy.special import expit, log_expit

from analysis import frames, resample, screening

TieModel = Literal["davidson", "rao-kupper", "split"]
CiMethod = Literal["cluster", "bootstrap", "hessian", "none"]
TIE_MODELS: tuple[str, ...] = ("davidson", "rao-kupper", "split")
CI_METHODS: tuple[str, ...] = ("cluster", "bootstrap", "hessian", "none")
#: Interval methods a fit can report (``ci="none"`` reports none).
INTERVAL_METHODS: tuple[str, ...] = ("cluster", "bootstrap", "hessian")
#: Largest share of bootstrap rounds that may fail (no finite MLE, no convergence) before
#: the bootstrap interval is refused: the kept rounds are conditioned on a finite MLE, and
#: beyond a few per cent that conditioning visibly narrows the interval.
MAX_BOOT_FAILED = 0.10
#: Above this many conditions the Newton system is sparse and solved by CG.
SPARSE_ABOVE = 400
#: Elo-like scale: 400 points per factor 10 in odds.
ELO_SCALE = 400.0 / np.log(10.0)
ELO_OFFSET = 1500.0
_MAX_ITER = 100
_BOOT_MAX_ITER = 40
# Newton converges quadratically: once a step is below 1e-6 the point it lands on is
# within ~1e-12 of the optimum, so stopping there saves a confirming iteration.
_TOL = 1e-6
_BOOT_TOL = 1e-6


class ComparisonGraphError(ValueError):
    """The comparisons cannot give finite, comparable scores. ``components`` lists the parts.

    Parameters
    ----------
    message : str
        The error message.
    components : list of list of str
        The groups of conditions the graph splits into (largest first), kept as the
        ``components`` attribute.
    """

    def __init__(self, message: str, components: list[list[str]]):
        self.components = components
        super().__init__(message)


class DisconnectedError(ComparisonGraphError):
    """The comparison graph falls apart: scores of different components are not comparable."""


class SeparationError(ComparisonGraphError):
    """Some group of conditions never loses (or never wins) against the rest: no finite MLE."""


# ----------------------------------------------------------------------------------------
# Sufficient statistics
# ----------------------------------------------------------------------------------------


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
    wins_i, ties, wins_j for every pair (in that block order).
    """

    pairs: PairCounts
    raters: tuple[str, ...]
    per_rater: sparse.csr_array


def count_votes(votes: pd.DataFrame, graded: bool = False, main_only: bool = True) -> VoteCounts:
    """Aggregate a pairwise frame into sufficient statistics (pooled and per rater).

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here).
    graded : bool
        Count a vote of strength ``|pref|`` as that many wins.
    main_only : bool
        Drop consistency repeats and gold trials first (as screening's ``main_votes``).

    Returns
    -------
    VoteCounts
    """
    df = frames.validate(votes, "pairwise")
    return _count(screening._main(df) if main_only else df, graded)


def _count(df: pd.DataFrame, graded: bool) -> VoteCounts:
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
    return VoteCounts(pc, tuple(str(r) for r in raters), per_rater)


# ----------------------------------------------------------------------------------------
# Graph checks
# ----------------------------------------------------------------------------------------


def _components(n: int, rows: np.ndarray, cols: np.ndarray, strong: bool) -> tuple[int, np.ndarray]:
    g = sparse.coo_array((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    return csgraph.connected_components(g, directed=strong, connection="strong" if strong else "weak")


def _grouped(conditions: Sequence[str], labels: np.ndarray) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for name, lab in zip(conditions, labels, strict=True):
        groups.setdefault(int(lab), []).append(name)
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def _listed(groups: list[list[str]]) -> str:
    return " | ".join("[" + ", ".join(g) + "]" for g in groups)


def check_graph(pc: PairCounts, model: str) -> None:
    """Raise when the MLE is not unique and finite.

    The comparison graph must be connected (else :class:`DisconnectedError`), and the
    "did not lose to" graph (edge i→j when i beat or tied j) strongly connected (else a
    group never loses or never wins: :class:`SeparationError`).

    Parameters
    ----------
    pc : PairCounts
        The counts to be fitted.
    model : str
        The model actually fitted (``"bt"``, ``"davidson"`` or ``"rao-kupper"``; ties
        were already split for ``"split"``). With a tie model, a tie counts as "did not
        lose" for both sides, and at least one decided vote is needed.

    Raises
    ------
    ValueError
        With fewer than 2 conditions.
    DisconnectedError
        When the comparison graph is disconnected or a condition was never compared.
    SeparationError
        When some group never loses (or never wins) against the rest, or (tie models)
        every vote is a tie.
    """
    n = pc.n
    if n < 2:
        raise ValueError("need at least 2 conditions to fit")
    seen = np.zeros(n, dtype=bool)
    seen[pc.i] = seen[pc.j] = True
    k, labels = _components(n, pc.i, pc.j, strong=False)
    if k > 1 or not seen.all():
        comps = _grouped(pc.conditions, labels)
        raise DisconnectedError(
            f"the comparison graph is disconnected ({len(comps)} components: {_listed(comps)}); scores of "
            "different components are not comparable — add comparisons between them or fit each "
            "component separately",
            comps,
        )
    tie_both = pc.ties > 0 if model != "bt" else np.zeros(len(pc.i), dtype=bool)
    beat_ij = (pc.wins_i > 0) | tie_both
    beat_ji = (pc.wins_j > 0) | tie_both
    # Edge from loser to winner: strong connectivity ⇔ every group wins and loses somewhere.
    rows = np.concatenate([pc.j[beat_ij], pc.i[beat_ji]])
    cols = np.concatenate([pc.i[beat_ij], pc.j[beat_ji]])
    k, labels = _components(n, rows, cols, strong=True)
    if k > 1:
        comps = _grouped(pc.conditions, labels)
        # Splitting ties gives each side of a tie half a win: the same "did not lose" edges
        # a tie model already counts, so it is no way out here; only more votes are.
        raise SeparationError(
            "no finite maximum-likelihood scores: some group of conditions never loses (or never "
            f"wins) against the others (groups: {_listed(comps)}); collect more votes comparing these groups "
            "or fit only the conditions of one group",
            comps,
        )
    if model != "bt" and pc.wins_i.sum() + pc.wins_j.sum() == 0:
        raise SeparationError("only ties: the tie parameter has no finite estimate; ties='split' fits them as "
                              "equal scores", [list(pc.conditions)])


# ----------------------------------------------------------------------------------------
# Likelihood pieces (batched over bootstrap rounds: arrays are (B, P))
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BTResult:
    """A Bradley–Terry fit.

    Attributes
    ----------
    conditions : tuple of str
    scores : ndarray
        Centred log-strengths (or anchored / Elo-like, see ``anchor`` and ``elo``).
    cov : ndarray or None
        Hessian (observed-information, model-based) covariance of ``scores``; ``None``
        when not computed (``ci="none"``, or ``ci="cluster"`` above ``SPARSE_ABOVE``
        conditions, where it would cost a dense inverse nobody asked for).
    cluster_cov : ndarray or None
        Rater-clustered (sandwich) covariance of ``scores``; ``None`` without per-rater
        counts (:func:`fit_counts`) or with ``ci="hessian"``/``"none"``; all NaN with
        fewer than 2 raters. Above ``SPARSE_ABOVE`` conditions it is formed from
        ``cluster_factor`` (``F Fᵀ``) on first use (:meth:`covariance`).
    boot : ndarray or None
        Bootstrap replicates of ``scores`` (rounds × conditions), failed rounds removed;
        ``None`` unless the bootstrap was asked for and not refused.
    n_votes : ndarray
        Votes involving each condition.
    loglik : float
        Maximised log-likelihood (multinomial kernel, no constant).
    params : dict
        Fitted tie parameter(s) (``nu`` for Davidson, ``eta``/``theta`` for Rao–Kupper),
        iterations, convergence, number of raters, failed bootstrap rounds
        (``boot_failed``), why a bootstrap was refused (``boot_refused``) and ``notes``
        (list of str) on anything a reader of the intervals must know.
    ties, graded, anchor, elo, ci, n_boot, seed, alpha
        The settings that produced the fit; ``ci`` is the interval method actually
        reported (``"cluster"`` when a requested bootstrap was refused).
    """

    conditions: tuple[str, ...]
    scores: np.ndarray
    cov: np.ndarray | None
    boot: np.ndarray | None
    n_votes: np.ndarray
    loglik: float
    params: dict[str, Any] = field(default_factory=dict)
    ties: str = "davidson"
    graded: bool = False
    anchor: str | None = None
    elo: bool = False
    ci: str = "cluster"
    n_boot: int = 0
    seed: int | None = 0
    alpha: float = 0.05
    cluster_cov: np.ndarray | None = None
    cluster_factor: np.ndarray | None = field(default=None, repr=False)

    @property
    def primary(self) -> str:
        """The interval method of the ``se``/``ci_*`` columns (``"none"`` without intervals)."""
        return self.ci

    @property
    def n_raters(self) -> int | None:
        """Raters behind the fit (``None`` for counts without rater ids)."""
        return self.params.get("n_raters")

    def covariance(self, method: str | None = None) -> np.ndarray:
        """Covariance of the scores by one interval method (default: :attr:`primary`).

        Parameters
        ----------
        method : {"cluster", "bootstrap", "hessian"}, optional
            Default: :attr:`primary`.

        Returns
        -------
        ndarray, shape (n, n)
            On the scale of ``scores``; the bootstrap one is the sample covariance of the
            replicates; the clustered one is NaN with fewer than 2 raters.

        Raises
        ------
        ValueError
            When the fit has no covariance of that kind.
        """
        method = method or self.primary
        if method == "bootstrap":
            if self.boot is None:
                why = self.params.get("boot_refused") or "fit with ci='bootstrap'"
                raise ValueError(f"no bootstrap intervals: {why}")
            return np.cov(self.boot, rowvar=False)
        if method == "cluster":
            if self.cluster_cov is None and self.cluster_factor is not None:
                # Formed once, when a test or a plot needs the whole matrix (frozen: set directly).
                object.__setattr__(self, "cluster_cov", _gram(self.cluster_factor))
            if self.cluster_cov is None:
                raise ValueError("no rater-clustered covariance (it needs votes with rater ids: fit(), "
                                 "ci='cluster' or 'bootstrap')")
            return self.cluster_cov
        if method == "hessian":
            if self.cov is None:
                raise ValueError("no Hessian covariance (fit with ci='hessian')")
            return self.cov
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")

    def intervals(self, method: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(se, ci_low, ci_high)`` by one interval method (default: :attr:`primary`).

        ``"cluster"``: ``score ± t_{G−1}·se`` (``G`` raters); ``"hessian"``: Wald,
        ``score ± z·se``; ``"bootstrap"``: expanded percentile interval of the replicates
        (percentiles at ``Φ(±t_{G−1})``, :func:`analysis.resample.expanded_percentiles`).

        Parameters
        ----------
        method : {"cluster", "bootstrap", "hessian"}, optional
            Default: :attr:`primary`.

        Returns
        -------
        se, ci_low, ci_high : ndarray
            Per condition, on the scale of ``scores``, at confidence level ``1 − alpha``.

        Raises
        ------
        ValueError
            When the fit has no covariance of that kind.
        """
        method = method or self.primary
        if method == "cluster" and self.cluster_cov is None and self.cluster_factor is not None:
            se = np.sqrt(np.einsum("ij,ij->i", self.cluster_factor, self.cluster_factor))
        else:
            se = np.sqrt(np.clip(np.diag(self.covariance(method)), 0, None))
        if method == "bootstrap":
            p_low, p_high = resample.expanded_percentiles(1 - self.alpha, self.n_raters or 0)
            lo, hi = np.quantile(self.boot, [float(p_low), float(p_high)], axis=0)
            return se, lo, hi
        q = self.quantile(method)
        return se, self.scores - q * se, self.scores + q * se

    def quantile(self, method: str | None = None) -> float:
        """The critical value of a symmetric interval: ``t_{G−1, 1−α/2}`` for ``"cluster"``
        (``G`` raters; NaN below 2), ``z_{1−α/2}`` otherwise.

        Parameters
        ----------
        method : {"cluster", "bootstrap", "hessian"}, optional
            Default: :attr:`primary`.

        Returns
        -------
        float
        """
        if (method or self.primary) == "cluster":
            g = self.n_raters or 0
            return float(stats.t.ppf(1 - self.alpha / 2, g - 1)) if g >= 2 else float("nan")
        return float(stats.norm.ppf(1 - self.alpha / 2))

    @property
    def se(self) -> np.ndarray:
        """Standard errors of the scores by the primary method."""
        return self.intervals()[0]

    @property
    def ci_low(self) -> np.ndarray:
        """Lower confidence bounds of the scores by the primary method."""
        return self.intervals()[1]

    @property
    def ci_high(self) -> np.ndarray:
        """Upper confidence bounds of the scores by the primary method."""
        return self.intervals()[2]

    def to_frame(self, method: str | None = None) -> pd.DataFrame:
        """``condition, score, se, ci_low, ci_high, ci_method, n_votes``: one interval per condition.

        Parameters
        ----------
        method : {"cluster", "bootstrap", "hessian"}, optional
            Interval method of the ``se``/``ci_*`` columns (default: :attr:`primary`).

        Returns
        -------
        DataFrame
            One row per condition, in ``conditions`` order; ``se``/``ci_*`` are NaN with
            ``ci="none"``; ``ci_method`` names the interval method.
        """
        method = method or self.primary
        out = pd.DataFrame({"condition": list(self.conditions), "score": self.scores})
        if method != "none":
            se, lo, hi = self.intervals(method)
            out["se"], out["ci_low"], out["ci_high"] = se, lo, hi
        else:
            out["se"] = out["ci_low"] = out["ci_high"] = np.nan
        out["ci_method"] = method
        out["n_votes"] = np.asarray(self.n_votes, dtype=np.int64)
        return out

    def settings(self) -> dict[str, Any]:
        """The parameters that produced this fit (for reports).

        Returns
        -------
        dict
            ``ties, graded, anchor, elo, ci, n_boot, seed, alpha`` and everything in ``params``.
        """
        return {"ties": self.ties, "graded": self.graded, "anchor": self.anchor, "elo": self.elo,
                "ci": self.ci, "n_boot": self.n_boot, "seed": self.seed, "alpha": self.alpha, **self.params}


# ----------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Scale:
    """Linear map from centred scores to the reported scale (anchor, then Elo)."""

    anchor_index: int | None
    factor: float
    offset: float

    @classmethod
    def make(cls, conditions: Sequence[str], anchor: str | None, elo: bool) -> _Scale:
        k = None
        if anchor is not None:
            anchor = frames.normalize_id(str(anchor))  # spelled as the votes' ids are
            if anchor not in conditions:
                raise ValueError(f"anchor {anchor!r} is not a condition ({', '.join(conditions)})")
            k = list(conditions).index(anchor)
        return cls(k, ELO_SCALE if elo else 1.0, ELO_OFFSET if elo else 0.0)

    def scores(self, s: np.ndarray) -> np.ndarray:
        """Map score vectors (last axis = conditions)."""
        if self.anchor_index is not None:
            s = s - s[..., self.anchor_index : self.anchor_index + 1]
        return self.factor * s + self.offset

    def rows(self, f: np.ndarray) -> np.ndarray:
        """A covariance factor (rows = conditions) of the mapped scores."""
        if self.anchor_index is not None:
            f = f - f[self.anchor_index : self.anchor_index + 1]
        return self.factor * f

    def cov(self, c: np.ndarray) -> np.ndarray:
        """Covariance of the mapped scores: ``Cov(s_i − s_k, s_j − s_k)`` when anchored."""
        if self.anchor_index is not None:
            k = self.anchor_index
            c = c - c[:, [k]] - c[[k], :] + c[k, k]
        return self.factor**2 * c


def _pseudo_inverse(info: np.ndarray | sparse.csr_array, u: np.ndarray) -> np.ndarray:
    """``J⁺ = (J + u uᵀ)⁻¹ − u uᵀ``: covariance under the sum-to-zero constraint."""
    dense = info.toarray() if sparse.issparse(info) else info
    full = np.linalg.inv(dense + np.outer(u, u))
    return full - np.outer(u, u)


# ----------------------------------------------------------------------------------------
# Rater-clustered (sandwich) covariance
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# Rater bootstrap
# ----------------------------------------------------------------------------------------


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


def _check_options(ties: str, ci: str, alpha: float, n_boot: int, per_vote: bool) -> None:
    """Raise ``ValueError`` for fit options that are wrong whatever the data."""
    if ties not in TIE_MODELS:
        raise ValueError(f"ties must be one of {TIE_MODELS}, got {ties!r}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if ci in ("cluster", "bootstrap") and not per_vote:
        raise ValueError(f"ci={ci!r} needs per-vote rows with rater ids (use fit(), not fit_counts())")
    if ci == "bootstrap" and n_boot < 2:
        raise ValueError("n_boot must be at least 2")


def _fit_pairs(
    pc: PairCounts,
    *,
    ties: str,
    graded: bool,
    anchor: str | None,
    elo: bool,
    ci: str,
    n_boot: int,
    seed: int | None,
    alpha: float,
    sparse_solver: bool | None,
    rater_counts: VoteCounts | None,
) -> BTResult:
    _check_options(ties, ci, alpha, n_boot, per_vote=rater_counts is not None)
    n = pc.n
    fitted, counts = _effective(ties, pc.stacked())
    check_graph(pc if ties != "split" else PairCounts(pc.conditions, pc.i, pc.j, counts[:, 0],
                                                      counts[:, 1], counts[:, 2], pc.n_votes), fitted)
    use_sparse = n > SPARSE_ABOVE if sparse_solver is None else bool(sparse_solver)
    pr = _Problem(fitted, n, pc.i, pc.j)
    theta, ll, info, iters, converged = _newton_single(pr, counts, _start(fitted, n, pc.i, pc.j, counts), use_sparse)
    scale = _Scale.make(pc.conditions, anchor, elo)
    notes: list[str] = []
    n_raters = 0 if rater_counts is None else int((rater_counts.per_rater.sum(axis=1) > 0).sum())
    hessian = None
    # The model-based covariance is also the floor of the clustered one; above SPARSE_ABOVE
    # it costs a dense inverse, paid only when asked for.
    if ci == "hessian" or (ci != "none" and n <= SPARSE_ABOVE):
        hessian = _pseudo_inverse(info, _u(pr))[:n, :n]
    clustered = factor = None
    if ci in ("cluster", "bootstrap"):
        assert rater_counts is not None
        clustered, factor = _cluster_cov(pr, ties, info, theta, rater_counts, hessian, notes)
        clustered = None if clustered is None else scale.cov(clustered)
        factor = None if factor is None else scale.rows(factor)
    boot, failed, refused = None, 0, None
    if ci == "bootstrap":
        assert rater_counts is not None
        reps = None
        if n_raters >= 2:
            reps, failed = _bootstrap(pr, ties, rater_counts.per_rater, len(pc.i), theta, n_boot, seed, use_sparse)
        refused = _boot_refusal(n_raters, reps, failed, n_boot)
        if refused is None:
            boot = scale.scores(reps)
        else:
            notes.append(f"rater bootstrap refused ({refused}); the intervals are rater-clustered instead")
            warnings.warn(f"rater bootstrap refused: {refused}; reporting rater-clustered intervals", stacklevel=5)
    params: dict[str, Any] = {
        **_tie_params(ties, fitted, theta, n),
        "fitted_model": fitted,
        "iterations": iters,
        "converged": converged,
        "solver": "sparse-cg" if use_sparse else "dense",
        "n_raters": None if rater_counts is None else n_raters,
        "n_pairs": len(pc.i),
        "boot_failed": failed,
        "boot_refused": refused,
        "notes": notes,
    }
    return BTResult(
        conditions=pc.conditions, scores=scale.scores(theta[:n]),
        cov=None if hessian is None else scale.cov(hessian), cluster_cov=clustered, cluster_factor=factor,
        boot=boot,
        n_votes=pc.n_votes, loglik=ll, params=params, ties=ties, graded=graded, anchor=anchor, elo=elo,
        ci="cluster" if refused else ci, n_boot=n_boot if boot is not None else 0, seed=seed, alpha=alpha,
    )


def fit(
    votes: pd.DataFrame,
    ties: TieModel = "davidson",
    graded: bool = False,
    anchor: str | None = None,
    elo: bool = False,
    ci: CiMethod = "cluster",
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    *,
    main_only: bool = True,
    sparse_solver: bool | None = None,
) -> BTResult:
    """Fit Bradley–Terry scores to a pairwise vote frame.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here; consistency repeats and gold trials dropped
        unless ``main_only=False``).
    ties : {"davidson", "rao-kupper", "split"}
        How "no preference" votes enter (see the module docstring).
    graded : bool
        A vote of strength ``|pref|`` counts as that many wins.
    anchor : str, optional
        Report ``score − score(anchor)`` instead of centred scores.
    elo : bool
        Report on the Elo-like scale ``1500 + 400/ln 10 · score``.
    ci : {"cluster", "bootstrap", "hessian", "none"}
        Interval method (see the module docstring): rater-clustered sandwich (default),
        rater bootstrap (the clustered covariance is computed too), or model-based
        Hessian, which treats votes as independent.
    n_boot : int
        Bootstrap rounds (resampling raters).
    seed : int or None
        Seed of the bootstrap.
    alpha : float
        1 − confidence level.
    main_only : bool
        Drop repeats and gold trials first.
    sparse_solver : bool, optional
        Force the sparse (CG) or dense Newton solver; by default sparse above
        ``SPARSE_ABOVE`` conditions.

    Returns
    -------
    BTResult

    Raises
    ------
    frames.FrameError
        On a malformed frame.
    DisconnectedError, SeparationError
        When the comparisons do not determine finite, comparable scores.
    """
    df = frames.validate(votes, "pairwise")
    return _fit_frame(df, ties=ties, graded=graded, anchor=anchor, elo=elo, ci=ci, n_boot=n_boot, seed=seed,
                      alpha=alpha, main_only=main_only, sparse_solver=sparse_solver)


def _fit_frame(df: pd.DataFrame, *, graded: bool = False, main_only: bool = True, **kw: Any) -> BTResult:
    """:func:`fit` of a frame :func:`analysis.frames.validate` returned (not validated again)."""
    return _fit_votes(_count(screening._main(df) if main_only else df, graded), graded=graded, **kw)


def _fit_votes(vc: VoteCounts, *, graded: bool = False, **kw: Any) -> BTResult:
    """:func:`fit` of votes already counted (``vc`` from :func:`count_votes` with the same ``graded``)."""
    kw = {"ties": "davidson", "anchor": None, "elo": False, "ci": "cluster", "n_boot": 1000, "seed": 0,
          "alpha": 0.05, "sparse_solver": None, **kw}
    return _fit_pairs(vc.pairs, graded=graded, rater_counts=vc, **kw)


def fit_counts(
    conditions: Sequence[str],
    wins: np.ndarray | sparse.spmatrix | sparse.sparray,
    ties: np.ndarray | sparse.spmatrix | sparse.sparray | None = None,
    *,
    tie_model: TieModel = "davidson",
    anchor: str | None = None,
    elo: bool = False,
    ci: Literal["hessian", "none"] = "hessian",
    alpha: float = 0.05,
    n_votes: np.ndarray | None = None,
    sparse_solver: bool | None = None,
) -> BTResult:
    """Fit Bradley–Terry scores to aggregated counts.

    Parameters
    ----------
    conditions : sequence of str
        Names, in matrix order.
    wins : (n, n) array or sparse matrix
        ``wins[a, b]`` = (possibly weighted or fractional) times ``a`` was preferred to ``b``.
    ties : (n, n) array or sparse matrix, optional
        Ties: symmetric (each tie in both cells) or triangular.
    tie_model : {"davidson", "rao-kupper", "split"}
    anchor, elo, alpha
        As in :func:`fit`.
    ci : {"hessian", "none"}
        No rater bootstrap without per-rater data.
    n_votes : array, optional
        Votes per condition for the report (default: counts involving it).
    sparse_solver : bool, optional
        As in :func:`fit`.

    Returns
    -------
    BTResult
    """
    pc = PairCounts.from_matrices(conditions, wins, ties, n_votes)
    return _fit_pairs(pc, ties=tie_model, graded=False, anchor=anchor, elo=elo, ci=ci, n_boot=0, seed=None,
                      alpha=alpha, sparse_solver=sparse_solver, rater_counts=None)


def _reason_sets(reason: pd.Series) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Each row's decision factors (``"colours;brightness"`` → two factors), as codes into
    the list of distinct factor sets (split once per distinct ``reason`` text, not per row)."""
    codes, texts = pd.factorize(reason.fillna("").astype(str))
    sets = [frozenset(x.strip() for x in str(t).split(";") if x.strip()) for t in texts]
    return codes, sets


def present_reasons(votes: pd.DataFrame) -> list[str]:
    """The decision factors named in a frame's ``reason`` column, sorted (``;`` joins several).

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (not validated).

    Returns
    -------
    list of str
        Distinct factors; empty without a ``reason`` column.
    """
    if "reason" not in votes.columns:
        return []
    _, sets = _reason_sets(votes["reason"])
    return sorted(set().union(*sets))


#: What :func:`fit_by_reason` does with a factor whose votes cannot be fitted.
ON_ERROR = ("raise", "skip")


def fit_by_reason(
    votes: pd.DataFrame,
    reasons: Iterable[str] | None = None,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    failures: dict[str, str] | None = None,
    **kw: Any,
) -> dict[str, BTResult]:
    """One fit per decision factor, on the votes that name that factor.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here); ``reason`` may hold several factors joined by ``;``.
    reasons : iterable of str, optional
        Factors to fit (default: every factor present, sorted).
    on_error : {"raise", "skip"}
        ``"raise"`` (default): the first factor that cannot be fitted raises.
        ``"skip"``: such a factor (no votes name it, too few to determine every score,
        a disconnected graph, ...) is left out of the result and the others are still
        fitted; the reason is recorded in ``failures``.
    failures : dict, optional
        With ``on_error="skip"``, filled with factor → error message for every factor
        left out (pass an empty dict and read it afterwards).
    **kw
        Passed to :func:`fit`.

    Returns
    -------
    dict
        Factor → :class:`BTResult`, in the order of ``reasons``.

    Raises
    ------
    frames.FrameError
        On a malformed frame.
    ComparisonGraphError
        (``on_error="raise"``) naming the factor whose votes do not determine the scores.
    ValueError
        (``on_error="raise"``) a factor no vote names; bad ``on_error`` or fit options.
    """
    return _fit_by_reason(frames.validate(votes, "pairwise"), reasons, on_error=on_error, failures=failures,
                          **kw)


def _fit_by_reason(
    df: pd.DataFrame,
    reasons: Iterable[str] | None = None,
    *,
    on_error: str = "raise",
    failures: dict[str, str] | None = None,
    **kw: Any,
) -> dict[str, BTResult]:
    """:func:`fit_by_reason` of an already validated frame."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    _check_options(kw.get("ties", "davidson"), kw.get("ci", "cluster"), kw.get("alpha", 0.05),
                   kw.get("n_boot", 1000), per_vote=True)
    codes, sets = _reason_sets(df["reason"])
    present = sorted(set().union(*sets))
    wanted = present if reasons is None else [frames.normalize_id(str(r)) for r in reasons]
    out: dict[str, BTResult] = {}
    for reason in wanted:
        rows = np.isin(codes, [k for k, s in enumerate(sets) if reason in s])
        try:
            if not rows.any():
                raise ValueError(f"no votes give the reason {reason!r} (present: {', '.join(present) or 'none'})")
            try:
                out[reason] = _fit_frame(df[rows], **kw)
            except ComparisonGraphError as exc:
                raise type(exc)(f"reason {reason!r}: {exc}", exc.components) from exc
        except (ComparisonGraphError, ValueError) as exc:
            if on_error == "raise" or isinstance(exc, frames.FrameError):
                raise
            if failures is not None:
                failures[reason] = str(exc)
    return out
