"""Fitting Bradley–Terry scores: from a vote frame (:func:`fit`) or from aggregated counts (:func:`fit_counts`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from analysis import frames
from analysis.bradley_terry.counts import PairCounts, VoteCounts, count_votes
from analysis.bradley_terry.graph import check_graph
from analysis.bradley_terry.intervals import _boot_refusal, _bootstrap, _cluster_cov
from analysis.bradley_terry.likelihood import (
    _effective,
    _newton_single,
    _Problem,
    _pseudo_inverse,
    _start,
    _tie_params,
    _u,
)
from analysis.bradley_terry.result import BTResult

TieModel = Literal["davidson", "rao-kupper", "split"]


CiMethod = Literal["cluster", "bootstrap", "hessian", "none"]


TIE_MODELS: tuple[str, ...] = ("davidson", "rao-kupper", "split")


CI_METHODS: tuple[str, ...] = ("cluster", "bootstrap", "hessian", "none")


#: Above this many conditions the Newton system is sparse and solved by CG.
SPARSE_ABOVE = 400


#: Elo-like scale: 400 points per factor 10 in odds.
ELO_SCALE = 400.0 / np.log(10.0)


ELO_OFFSET = 1500.0


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
    votes: pd.DataFrame | VoteCounts,
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
    votes : DataFrame or VoteCounts
        Pairwise votes (validated here unless a pairwise :class:`analysis.frames.Votes`;
        consistency repeats and gold trials dropped unless ``main_only=False``), or votes
        :func:`count_votes` already counted with the same ``graded``.
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
        Drop repeats and gold trials first (a frame only: counts are taken as they are).
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
    ValueError
        Counts made with another ``graded``; bad options.
    """
    vc = votes if isinstance(votes, VoteCounts) else count_votes(votes, graded, main_only)
    if vc.graded != graded:
        raise ValueError(f"the votes were counted with graded={vc.graded}: fit them with the same graded")
    return _fit_pairs(vc.pairs, ties=ties, graded=graded, anchor=anchor, elo=elo, ci=ci, n_boot=n_boot, seed=seed,
                      alpha=alpha, sparse_solver=sparse_solver, rater_counts=vc)


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
