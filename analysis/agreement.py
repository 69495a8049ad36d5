"""Agreement between an objective metric and subjective scores (2023 challenge metrics).

* **SROCC** (Spearman) and **KRCC** (Kendall τ-b) on the raw values — mapping-free;
* **PLCC** (Pearson) after fitting a monotone-ish mapping of the objective values to the
  subjective scale, as VQEG recommends: a 3rd-order polynomial and the 4-parameter
  logistic ``f(x) = (β1 − β2) / (1 + exp(−(x − β3)/|β4|)) + β2``;
* **RMSE** between the subjective scores and the mapped objective values;
* **outlier ratio**: share of items whose residual after mapping exceeds the
  threshold — the per-item CI half-width when given (VQEG), otherwise
  ``2 × sd`` of the residuals;
* **main score** ``(|SROCC| + |PLCC|) / 2`` with the PLCC of ``main_mapping``
  (polynomial by default, as in the 2023 challenge).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

Mapping = Literal["poly3", "logistic4"]


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic ``(β1 − β2) / (1 + exp(−(x − β3)/|β4|)) + β2``.

    Parameters
    ----------
    x : ndarray
        Objective values.
    b1, b2 : float
        Upper and lower asymptotes (swapped for a decreasing curve).
    b3 : float
        Midpoint, in the units of ``x``.
    b4 : float
        Scale (slope ``1/|b4|``); only its magnitude matters.

    Returns
    -------
    ndarray
        The mapped values, same shape as ``x``.
    """
    # expit, not 1/(1+exp(-z)): the optimiser tries extreme slopes and exp() would overflow.
    return (b1 - b2) * special.expit((x - b3) / abs(b4)) + b2


def fit_poly3(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares cubic from ``x`` to ``y``; returns (mapped x, coefficients on standardised x).

    ``x`` is standardised first so the fit is well conditioned whatever its units. With
    fewer than four distinct ``x`` values the degree drops to ``distinct − 1``.

    Parameters
    ----------
    x : ndarray
        Objective values, 1-D.
    y : ndarray
        Subjective scores, same length.

    Returns
    -------
    mapped : ndarray
        The fitted polynomial at each ``x``.
    coef : ndarray
        Polynomial coefficients (highest power first, as :func:`numpy.polyfit`) on
        ``(x − mean x) / sd x``.
    """
    mu, sd = x.mean(), x.std() or 1.0
    xs = (x - mu) / sd
    deg = min(3, len(np.unique(x)) - 1)
    coef = np.polyfit(xs, y, deg)
    return np.polyval(coef, xs), coef


def fit_logistic4(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares 4-parameter logistic; returns (mapped x, β).

    Started at the VQEG defaults (β1 = max y, β2 = min y, β3 = mean x, β4 = sd x) and at
    a steeper start centred where ``y`` crosses its mid-range (the least-squares surface
    has flat regions); the best fit wins. The slope's sign is taken from the data, so
    decreasing metrics fit too.

    Parameters
    ----------
    x : ndarray
        Objective values, 1-D.
    y : ndarray
        Subjective scores, same length.

    Returns
    -------
    mapped : ndarray
        :func:`logistic4` at each ``x`` with the fitted β.
    beta : ndarray
        ``(β1, β2, β3, β4)`` of the fit with the smallest squared error.

    Raises
    ------
    RuntimeError
        When no start converges.
    """
    rising = stats.pearsonr(x, y)[0] >= 0 if np.std(x) > 0 and np.std(y) > 0 else True
    hi, lo = (y.max(), y.min()) if rising else (y.min(), y.max())
    sd = x.std() or 1.0
    x_mid = x[np.argmin(np.abs(y - (y.max() + y.min()) / 2))]
    best, best_sse = None, np.inf
    for p0 in ([hi, lo, x.mean(), sd], [hi, lo, x_mid, sd / 4]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                beta, _ = optimize.curve_fit(logistic4, x, y, p0=p0, maxfev=20_000)
        except RuntimeError:
            continue
        sse = float(np.sum((y - logistic4(x, *beta)) ** 2))
        if sse < best_sse:
            best, best_sse = beta, sse
    if best is None:
        raise RuntimeError("the 4-parameter logistic did not converge from any start")
    return logistic4(x, *best), best


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b)[0])


@dataclass(frozen=True)
class Agreement:
    """Objective-vs-subjective agreement metrics (see the module docstring)."""

    n: int
    srocc: float
    krcc: float
    plcc: float
    plcc_poly3: float
    plcc_logistic4: float
    rmse_poly3: float
    rmse_logistic4: float
    outlier_ratio_poly3: float
    outlier_ratio_logistic4: float
    main_score: float
    main_mapping: str
    outlier_threshold: str
    mappings: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (:func:`dataclasses.asdict`).

        Returns
        -------
        dict
        """
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per numeric metric: ``metric, value``.

        Returns
        -------
        DataFrame
            ``metric, value`` (floats; ``main_mapping``, ``outlier_threshold`` and
            ``mappings`` are left out).
        """
        d = {k: v for k, v in self.as_dict().items() if isinstance(v, int | float) and not isinstance(v, bool)}
        return pd.DataFrame({"metric": list(d), "value": [float(v) for v in d.values()]})


def _outliers(resid: np.ndarray, ci: np.ndarray | None) -> float:
    threshold = ci if ci is not None else 2 * resid.std(ddof=1)
    return float(np.mean(np.abs(resid) > threshold))


def _aligned(objective, subjective, subjective_ci):
    """Arrays of equal length; pandas Series are aligned on their index first."""
    if isinstance(objective, pd.Series) and isinstance(subjective, pd.Series):
        objective, subjective = objective.align(subjective, join="inner")
        if isinstance(subjective_ci, pd.Series):
            subjective_ci = subjective_ci.reindex(subjective.index)
    x = np.asarray(objective, dtype=float)
    y = np.asarray(subjective, dtype=float)
    ci = None if subjective_ci is None else np.asarray(subjective_ci, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or (ci is not None and ci.shape != y.shape):
        raise ValueError("objective, subjective (and subjective_ci) must be 1-D and of equal length")
    ok = np.isfinite(x) & np.isfinite(y) & (np.isfinite(ci) if ci is not None else True)
    if (~ok).any():
        raise ValueError(f"{int((~ok).sum())} non-finite value(s): drop them before measuring agreement")
    if len(x) < 5:
        raise ValueError("need at least 5 items (the logistic has 4 parameters)")
    return x, y, ci


def agreement(
    objective: np.ndarray | pd.Series,
    subjective: np.ndarray | pd.Series,
    subjective_ci: np.ndarray | pd.Series | None = None,
    *,
    main_mapping: Mapping = "poly3",
) -> Agreement:
    """Measure how well an objective metric predicts subjective scores.

    Parameters
    ----------
    objective, subjective : array-like or Series
        One value per item (Series are aligned on their index).
    subjective_ci : array-like, optional
        Per-item CI half-width of the subjective scores (outlier threshold).
    main_mapping : {"poly3", "logistic4"}
        Which PLCC enters the main score.

    Returns
    -------
    Agreement
    """
    if main_mapping not in ("poly3", "logistic4"):
        raise ValueError("main_mapping must be 'poly3' or 'logistic4'")
    x, y, ci = _aligned(objective, subjective, subjective_ci)
    srocc = float(stats.spearmanr(x, y)[0])
    krcc = float(stats.kendalltau(x, y)[0])
    fitted_p, coef = fit_poly3(x, y)
    try:
        fitted_l, beta = fit_logistic4(x, y)
    except RuntimeError:  # curve_fit did not converge: report it as missing, not as 0
        fitted_l, beta = np.full_like(y, np.nan), np.full(4, np.nan)
    plcc_p, plcc_l = _pearson(fitted_p, y), _pearson(fitted_l, y) if np.isfinite(fitted_l).all() else float("nan")
    res_p, res_l = y - fitted_p, y - fitted_l
    main_plcc = plcc_p if main_mapping == "poly3" else plcc_l
    return Agreement(
        n=len(x),
        srocc=srocc,
        krcc=krcc,
        plcc=_pearson(x, y),
        plcc_poly3=plcc_p,
        plcc_logistic4=plcc_l,
        rmse_poly3=float(np.sqrt(np.mean(res_p**2))),
        rmse_logistic4=float(np.sqrt(np.mean(res_l**2))),
        outlier_ratio_poly3=_outliers(res_p, ci),
        outlier_ratio_logistic4=_outliers(res_l, ci) if np.isfinite(res_l).all() else float("nan"),
        main_score=(abs(srocc) + abs(main_plcc)) / 2,
        main_mapping=main_mapping,
        outlier_threshold="given CI" if ci is not None else "2 sd of residuals",
        mappings={"poly3_standardised": [float(c) for c in coef], "logistic4": [float(b) for b in beta]},
    )
