"""Mean opinion scores (MOS) and ACR-HR differential scores (DMOS) with 95% intervals.

Two intervals are offered:

* **Student-t** — the classical P.910/BT.500 interval ``mean ± t(0.975, n−1)·sd/√n``
  over the individual scores of a group. It treats every score as independent.
* **bootstrap over raters** — resample raters with replacement (all of a rater's
  scores go together, because scores of one rater are not independent) and take
  the percentile interval of the group means. Vectorised: one matrix product of
  the (n_boot × raters) resampling counts with the (raters × groups) sums.

Repeat and gold rows never enter a MOS: both functions fit
:func:`analysis.screening.main_votes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from analysis import frames, normalize
from analysis.screening import main_votes

CI = Literal["t", "bootstrap", "both"]
Normalisation = Literal["minmax", "zscore", "zscore-rescaled"] | None

#: Scales on which ACR-HR differential scores are defined (five categories, 1..5).
DMOS_SCALES = ("acr-hr", "acr5")

#: Values of a ``role`` column that mark the hidden reference.
REFERENCE_ROLES = ("reference", "ref", "hidden_reference", "source")


@dataclass(frozen=True)
class MOSResult:
    """A MOS or DMOS table and the parameters that produced it.

    Attributes
    ----------
    table : DataFrame
        One row per group: the ``by`` columns, ``mos, sd, n, n_raters, ci_low,
        ci_high`` and, with ``ci="both"``, ``boot_se, boot_ci_low,
        boot_ci_high``. ``ci_low``/``ci_high`` hold the Student-t interval for
        ``ci="t"``/``"both"`` and the bootstrap interval for ``ci="bootstrap"``.
    kind : {"mos", "dmos"}
    params : dict
        ``by, ci, n_boot, seed, level, normalize`` and, for DMOS, ``reference``
        and ``n_unpaired`` (scores without the same rater's reference score).
    """

    table: pd.DataFrame
    kind: str
    params: dict = field(default_factory=dict)
    boot: np.ndarray | None = field(default=None, repr=False, compare=False)

    def covariance(self) -> np.ndarray:
        """Rater-bootstrap covariance of the group means (table order).

        Scores of one rater are shared between groups, so the means are correlated;
        this is the covariance to test differences with (it is how the report ranks
        ratings). Rounds in which some group had no drawn rater are left out.

        Returns
        -------
        ndarray, shape (n_groups, n_groups)

        Raises
        ------
        ValueError
            When the replicates were not kept (``keep_boot=False``) or fewer than two
            rounds cover every group.
        """
        if self.boot is None:
            raise ValueError("no bootstrap replicates kept: call with ci='bootstrap' or 'both' and keep_boot=True")
        full = self.boot[np.isfinite(self.boot).all(axis=1)]
        if len(full) < 2:
            raise ValueError("fewer than two bootstrap rounds cover every group: no covariance")
        return np.atleast_2d(np.cov(full, rowvar=False))

    def to_frame(self) -> pd.DataFrame:
        """The table, with the parameters in ``DataFrame.attrs``.

        Returns
        -------
        DataFrame
            A copy of ``table``; ``attrs`` holds ``params`` and ``kind``.
        """
        out = self.table.copy()
        out.attrs.update(self.params, kind=self.kind)
        return out


# --------------------------------------------------------------------------- intervals


def t_interval(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """``mean ± t((1+level)/2, n−1)·sd/√n``; NaN where ``n < 2``.

    Parameters
    ----------
    mean : ndarray
        Group means.
    sd : ndarray
        Sample standard deviations (``ddof=1``), same shape.
    n : ndarray
        Scores per group, same shape.
    level : float
        Coverage of the interval.

    Returns
    -------
    low, high : ndarray
        Student-t interval bounds, in the units of ``mean``.
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2, n - 1) * np.asarray(sd) / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def rater_bootstrap(
    sums: np.ndarray, counts: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval of group means when raters are resampled with replacement.

    Parameters
    ----------
    sums, counts : ndarray, shape (n_raters, n_groups)
        Per rater and group: the sum of the rater's scores and how many there are.
    n_boot : int
        Resampling rounds.
    seed : int
        Seed of the generator (results are reproducible).
    level : float
        Coverage of the interval.

    Returns
    -------
    se, low, high : ndarray, shape (n_groups,)
        Bootstrap standard error and percentile interval. A round in which no
        drawn rater scored a group does not count for that group.
    """
    return _summarise(bootstrap_means(sums, counts, n_boot, seed), level)


def bootstrap_means(sums: np.ndarray, counts: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Group means of ``n_boot`` rater-resampled panels (the replicates behind
    :func:`rater_bootstrap`).

    Parameters
    ----------
    sums, counts, n_boot, seed
        As in :func:`rater_bootstrap`.

    Returns
    -------
    ndarray, shape (n_boot, n_groups)
        NaN where no drawn rater scored the group in that round.
    """
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if sums.ndim != 2 or sums.shape != counts.shape:
        raise ValueError(f"sums and counts must be 2-D arrays of one shape, got {sums.shape} and {counts.shape}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    n_raters = sums.shape[0]
    rng = np.random.default_rng(seed)
    # How often each rater is drawn in each round; a multinomial draw is exactly
    # n_raters draws with replacement, without materialising the indices.
    weights = rng.multinomial(n_raters, np.full(n_raters, 1.0 / n_raters), size=n_boot).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights @ sums) / (weights @ counts)


def _summarise(means: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alpha = (1 - level) / 2
    if np.isnan(means).any():  # nanquantile is ~10x slower; only pay for it when needed
        low, high = np.nanquantile(means, [alpha, 1 - alpha], axis=0)
        return np.nanstd(means, axis=0, ddof=1), low, high
    low, high = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return np.std(means, axis=0, ddof=1), low, high


# --------------------------------------------------------------------------- aggregation


def _check_by(by: Sequence[str]) -> tuple[str, ...]:
    by = (by,) if isinstance(by, str) else tuple(by)
    allowed = {"cond", "content"}
    if not by or not set(by) <= allowed or "cond" not in by:
        raise ValueError(f"by must be ('cond',) or ('content', 'cond'), got {by!r}")
    return by


def _aggregate(
    values: pd.DataFrame, by: tuple[str, ...], ci: CI, n_boot: int, seed: int, level: float
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Group ``values`` (columns: rater, the ``by`` columns, ``v``) into a MOS table, and
    the bootstrap replicates of its means (``None`` without a bootstrap)."""
    values = values[np.isfinite(values["v"].to_numpy(dtype=float))]
    if len(values) == 0:
        raise ValueError("no scores left to average")
    if ci not in ("t", "bootstrap", "both"):
        raise ValueError(f"ci must be 't', 'bootstrap' or 'both', got {ci!r}")
    g = values.groupby(list(by), observed=True, sort=True)["v"]
    table = pd.DataFrame({"mos": g.mean(), "sd": g.std(ddof=1), "n": g.size()})
    table["n_raters"] = values.groupby(list(by), observed=True, sort=True)["rater"].nunique()
    t_low, t_high = t_interval(table["mos"].to_numpy(), table["sd"].to_numpy(), table["n"].to_numpy(), level)
    boot = None
    if ci in ("bootstrap", "both"):
        group = pd.MultiIndex.from_frame(values[list(by)]) if len(by) > 1 else pd.Index(values[by[0]])
        col = table.index.get_indexer(group)
        row, raters = pd.factorize(values["rater"])
        shape = (len(raters), len(table))
        cell = row * len(table) + col
        sums = np.bincount(cell, values["v"].to_numpy(dtype=float), shape[0] * shape[1]).reshape(shape)
        counts = np.bincount(cell, minlength=shape[0] * shape[1]).astype(float).reshape(shape)
        boot = bootstrap_means(sums, counts, n_boot, seed)
        se, b_low, b_high = _summarise(boot, level)
    if ci == "bootstrap":
        table["ci_low"], table["ci_high"] = b_low, b_high
    else:
        table["ci_low"], table["ci_high"] = t_low, t_high
    if ci == "both":
        table["boot_se"], table["boot_ci_low"], table["boot_ci_high"] = se, b_low, b_high
    return table.reset_index(), boot


def _scores(df: pd.DataFrame, normalise: Normalisation) -> np.ndarray:
    if normalise is None:
        return df["score"].to_numpy(dtype=float)
    if normalise == "minmax":
        return normalize._minmax(df)["score_norm"].to_numpy(dtype=float)
    if normalise in ("zscore", "zscore-rescaled"):
        return normalize._zscore(df, rescale=normalise == "zscore-rescaled")["score_norm"].to_numpy(dtype=float)
    raise ValueError(f"normalize must be None, 'minmax', 'zscore' or 'zscore-rescaled', got {normalise!r}")


def _ratings_main(votes: pd.DataFrame) -> pd.DataFrame:
    df = main_votes(votes)
    _require_ratings(df)
    return df


def _require_ratings(df: pd.DataFrame) -> None:
    if frames.detect_kind(df) != "ratings":
        raise frames.FrameError(["MOS needs a ratings frame (cond, score), got a pairwise frame"], "ratings")


def _one_scale(df: pd.DataFrame, normalise: Normalisation) -> None:
    scales = sorted(map(str, df["scale"].unique()))
    if len(scales) > 1 and normalise is None:
        raise frames.FrameError(
            [f"scores on several scales {scales} cannot be averaged raw; normalise them or split the frame"],
            "ratings",
        )


def mos(
    votes: pd.DataFrame,
    by: Sequence[str] = ("cond",),
    ci: CI = "t",
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    normalize: Normalisation = None,
    keep_boot: bool = False,
) -> MOSResult:
    """Mean opinion score per condition or per (content, condition).

    Parameters
    ----------
    votes : DataFrame
        A ratings frame (validated here). Repeat and gold rows are left out.
    by : ("cond",) or ("content", "cond")
        Grouping.
    ci : {"t", "bootstrap", "both"}
        Which interval(s) to compute (see the module docstring).
    n_boot : int
        Bootstrap rounds (resampling raters).
    seed : int
        Bootstrap seed.
    level : float
        Interval coverage.
    normalize : {None, "minmax", "zscore", "zscore-rescaled"}
        Per-rater normalisation applied to the main votes before averaging
        (see :mod:`analysis.normalize`; raters with a single value throughout
        drop out under all three).
    keep_boot : bool
        Keep the bootstrap replicates of the means in ``MOSResult.boot`` (rounds ×
        groups), so :meth:`MOSResult.covariance` can give their covariance. Off by
        default: per (content, condition) they can be large.

    Returns
    -------
    MOSResult
        ``.to_frame()`` columns: the ``by`` columns, ``mos, sd, n, n_raters,
        ci_low, ci_high`` (+ ``boot_se, boot_ci_low, boot_ci_high`` for
        ``ci="both"``).

    Raises
    ------
    analysis.frames.FrameError
        Invalid frame, a pairwise frame, or raw scores on several scales.
    """
    by = _check_by(by)
    return _mos(_ratings_main(votes), by, ci, n_boot, seed, level=level, normalize=normalize, keep_boot=keep_boot)


def _mos(df: pd.DataFrame, by: tuple[str, ...], ci: CI, n_boot: int, seed: int, *, level: float,
         normalize: Normalisation, keep_boot: bool) -> MOSResult:
    """:func:`mos` of validated main ratings (``screening._main`` of a validated frame)."""
    _require_ratings(df)
    _one_scale(df, normalize)
    values = pd.DataFrame({"rater": df["rater"].astype(str), "v": _scores(df, normalize)})
    for col in by:
        values[col] = df[col].astype(str)
    table, boot = _aggregate(values, by, ci, n_boot, seed, level)
    params = {"by": by, "ci": ci, "n_boot": n_boot, "seed": seed, "level": level, "normalize": normalize}
    return MOSResult(table, "mos", params, boot if keep_boot else None)


def _reference_name(df: pd.DataFrame, reference: str | None) -> str:
    """The hidden-reference condition: the argument, or the rows a ``role`` column marks."""
    if reference is not None:
        if not (df["cond"] == reference).any():
            raise ValueError(f"reference condition {reference!r} has no ratings")
        return reference
    if "role" in df.columns:
        marked = df["role"].astype("string").str.lower().isin(REFERENCE_ROLES).fillna(False)
        names = sorted(set(df.loc[marked.to_numpy(dtype=bool), "cond"].astype(str)))
        if len(names) == 1:
            return names[0]
        if len(names) > 1:
            raise ValueError(f"the role column marks several reference conditions {names}; pass reference=")
    raise ValueError("DMOS needs the hidden reference: pass reference='<condition>' "
                     f"or give the frame a 'role' column with one of {REFERENCE_ROLES}")


def dmos(
    votes: pd.DataFrame,
    reference: str | None = None,
    by: Sequence[str] = ("cond",),
    ci: CI = "t",
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    keep_boot: bool = False,
) -> MOSResult:
    """Differential MOS for ACR with hidden reference (ITU-T P.910, PROTOCOL.md §1).

    Per rater and content, ``DV = score(PVS) − score(reference) + 5``, where the
    reference score is the same rater's score of the same content's reference
    (averaged if they rated it more than once). DVs above 5 (a processed clip
    rated better than its source) are kept unclipped. The DVs are then averaged
    like :func:`mos`; the reference condition itself is not listed.

    Parameters
    ----------
    votes : DataFrame
        A ratings frame on ``acr-hr`` (or ``acr5``).
    reference : str, optional
        Name of the reference condition; when omitted it is read from a
        ``role`` column (rows with role ``reference``).
    by, ci, n_boot, seed, level, keep_boot
        As in :func:`mos`.

    Returns
    -------
    MOSResult
        As :func:`mos`; ``params["n_unpaired"]`` counts scores dropped because
        their rater did not rate the reference of that content.

    Raises
    ------
    analysis.frames.FrameError
        Invalid frame, a pairwise frame, or a scale other than 1..5 ACR.
    ValueError
        When the reference cannot be determined.
    """
    by = _check_by(by)
    return _dmos(_ratings_main(votes), reference, by, ci, n_boot, seed, level=level, keep_boot=keep_boot)


def _dmos(df: pd.DataFrame, reference: str | None, by: tuple[str, ...], ci: CI, n_boot: int, seed: int, *,
          level: float, keep_boot: bool) -> MOSResult:
    """:func:`dmos` of validated main ratings."""
    _require_ratings(df)
    off = sorted(set(map(str, df["scale"].unique())) - set(DMOS_SCALES))
    if off:
        raise frames.FrameError([f"DMOS is defined on {DMOS_SCALES} scores, got {off}"], "ratings")
    ref = _reference_name(df, reference)
    df = df.assign(rater=df["rater"].astype(str), content=df["content"].astype(str), cond=df["cond"].astype(str))
    is_ref = (df["cond"] == ref).to_numpy()
    ref_score = df[is_ref].groupby(["rater", "content"], observed=True)["score"].mean().astype(float)
    pvs = df[~is_ref]
    key = pd.MultiIndex.from_frame(pvs[["rater", "content"]])
    ref_of = ref_score.reindex(key).to_numpy()
    dv = pvs["score"].to_numpy(dtype=float) - ref_of + 5.0
    values = pd.DataFrame({"rater": pvs["rater"].to_numpy(), "v": dv})
    for col in by:
        values[col] = pvs[col].to_numpy()
    table, boot = _aggregate(values, by, ci, n_boot, seed, level)
    params = {"by": by, "ci": ci, "n_boot": n_boot, "seed": seed, "level": level, "normalize": None,
              "reference": ref, "n_unpaired": int(np.isnan(ref_of).sum())}
    return MOSResult(table, "dmos", params, boot if keep_boot else None)
