"""Resampling raters: the draw behind every rater bootstrap in ``analysis``.

A rater bootstrap draws raters with replacement, all of a rater's votes together. Drawing
``G`` of ``G`` raters (the textbook bootstrap) makes the bootstrap variance of a mean
``(G−1)/G`` of the unbiased one, which visibly narrows intervals on panels of 20–40
raters. Drawing ``G − 1`` instead makes it unbiased for means and totals (McCarthy &
Snowden 1985, "The bootstrap and finite population sampling", Vital and Health
Statistics 2(95); the rescaling bootstrap of Rao & Wu 1988, *JASA* 83:231, with
``m = n − 1``), and it is what every rater bootstrap here uses.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def rater_weights(n_raters: int, n_boot: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """How often each rater is drawn in each bootstrap round.

    Parameters
    ----------
    n_raters : int
        Raters in the panel (``G``, at least 2).
    n_boot : int
        Rounds.
    seed : int, Generator or None
        Seed (or generator) of the draw; the same seed gives the same weights.

    Returns
    -------
    ndarray of float, shape (n_boot, n_raters)
        Multinomial counts summing to ``G − 1`` in each round (see the module docstring).

    Raises
    ------
    ValueError
        With fewer than 2 raters (a panel of one cannot be resampled).
    """
    if n_raters < 2:
        raise ValueError(f"resampling raters needs at least 2 raters, got {n_raters}")
    rng = np.random.default_rng(seed)
    # A multinomial draw is exactly G−1 draws with replacement, without materialising indices.
    return rng.multinomial(n_raters - 1, np.full(n_raters, 1.0 / n_raters), size=n_boot).astype(float)


def expanded_percentiles(level: float, n_raters: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of the bootstrap distribution that give a ``level`` interval from ``G`` raters.

    The plain percentile interval ``[q_{α/2}, q_{1−α/2}]`` behaves like ``estimate ± z·se``
    and so misses the ``t_{G−1}`` a panel of ``G`` raters calls for. The expanded percentile
    interval (Hesterberg 2015, "What teachers should know about the bootstrap", *The
    American Statistician* 69:371, §5) takes the percentiles at ``Φ(±t_{G−1, 1−α/2})``;
    for the mean of normal per-rater totals it is then the exact t interval (with the
    ``G − 1`` draws of :func:`rater_weights`, which already remove the ``(G−1)/G`` bias).

    Parameters
    ----------
    level : float
        Coverage of the interval, in (0, 1).
    n_raters : int or ndarray of int
        Raters behind each estimate (``G ≥ 2``; smaller values give NaN).

    Returns
    -------
    low, high : ndarray of float
        Probabilities (same shape as ``n_raters``) at which to read the replicates.
    """
    g = np.asarray(n_raters, dtype=float)
    with np.errstate(invalid="ignore"):
        t = stats.t.ppf(0.5 + level / 2, np.where(g >= 2, g - 1, np.nan))
    high = stats.norm.cdf(t)
    return 1 - high, high
