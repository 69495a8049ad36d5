"""A Bradley–Terry fit: scores, their covariances by interval method, and the settings behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import resample
from analysis.bradley_terry.intervals import _gram

#: Interval methods a fit can report (``ci="none"`` reports none).
INTERVAL_METHODS: tuple[str, ...] = ("cluster", "bootstrap", "hessian")


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

        ``method`` and the errors are those of :meth:`covariance`. Each array holds one value per
        condition, on the scale of ``scores``, at confidence level ``1 − alpha``.
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
        """The critical value of a symmetric interval by ``method`` (as for :meth:`covariance`).

        ``t_{G−1, 1−α/2}`` for ``"cluster"`` (``G`` raters; NaN below 2), ``z_{1−α/2}`` otherwise.
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
