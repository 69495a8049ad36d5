"""Mean opinion scores (MOS) and ACR-HR differential scores (DMOS) with 95% intervals.

Three intervals are offered; every table reports one, named in its ``ci_method`` column:

* **rater-clustered** (``ci="cluster"``, the default) — the cluster-robust variance of
  a mean when each rater's scores form one cluster: for a group with ``N`` scores from
  ``R`` raters, ``Var = R/(R−1) · Σ_r (S_r − n_r·mean)² / N²`` (``S_r``, ``n_r``: the
  rater's sum and count in the group), interval ``mean ± t(0.975, R−1)·√Var``
  (Liang & Zeger 1986, *Biometrika* 73:13; the CR1 factor and ``R−1`` degrees of freedom
  as in Cameron & Miller 2015, *J. Human Resources* 50:317, §VI). With one score per
  rater it *is* the Student-t interval; with several scores per rater it widens by how
  much they share the rater's bias. NaN with fewer than 2 raters in a group.
* **bootstrap over raters** (``ci="bootstrap"``) — resample ``R − 1`` of ``R`` raters
  with replacement (all of a rater's scores go together; ``R − 1`` makes the bootstrap
  variance of a mean unbiased, see :mod:`analysis.resample`) and take the expanded
  percentile interval of the group means (percentiles at ``Φ(±t(0.975, R−1))``,
  Hesterberg 2015). Vectorised: one matrix product of the (n_boot × raters) resampling counts with
  the (raters × groups) sums. NaN with fewer than 2 raters in a group.
* **Student-t** (``ci="t"``) — the classical P.910/BT.500 interval
  ``mean ± t(0.975, n−1)·sd/√n`` over the individual scores of a group. It treats every
  score as independent, so it is too narrow whenever raters differ and each rates a
  condition more than once (e.g. one condition over many contents).

Repeat and gold rows never enter a MOS: both functions fit
:func:`analysis.screening.main_votes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse, stats

from analysis import frames, methods, normalize, resample
from analysis.screening import main_votes

CI = Literal["cluster", "bootstrap", "t"]
#: Interval methods of :func:`mos` and :func:`dmos`.
CI_METHODS: tuple[str, ...] = ("cluster", "bootstrap", "t")
Normalisation = Literal["minmax", "zscore", "zscore-rescaled"] | None

#: Test methods on whose scores ACR-HR differential scores are defined (five categories, 1..5).
DMOS_METHODS: tuple[str, ...] = tuple(m for m, entry in methods.METHODS.items() if entry.dmos)

#: Values of a ``role`` column that mark the hidden reference.
REFERENCE_ROLES = ("reference", "ref", "hidden_reference", "source")


@dataclass(frozen=True)
class MOSResult:
    """A MOS or DMOS table and the parameters that produced it.

    Attributes
    ----------
    table : DataFrame
        One row per group: the ``by`` columns, ``mos, sd, n, n_raters, se, ci_low,
        ci_high, ci_method`` — one interval, by the method ``ci`` named.
    kind : {"mos", "dmos"}
    params : dict
        ``by, ci, n_boot, seed, level, normalize, notes`` and, for DMOS, ``reference``
        and ``n_unpaired`` (scores without the same rater's reference score).
    cov : ndarray or None
        Covariance of the group means by the interval method (``keep_cov=True``): the
        clustered one, or the sample covariance of the bootstrap means, or — for
        ``"t"`` — diagonal (independent scores).
    """

    table: pd.DataFrame
    kind: str
    params: dict = field(default_factory=dict)
    cov: np.ndarray | None = field(default=None, repr=False, compare=False)

    def covariance(self) -> np.ndarray:
        """Covariance of the group means (table order) by the interval method.

        Scores of one rater are shared between groups, so the means are correlated;
        this is the covariance to test differences with (it is how the report ranks
        ratings).

        Returns
        -------
        ndarray, shape (n_groups, n_groups)

        Raises
        ------
        ValueError
            When it was not kept (``keep_cov=False``).
        """
        if self.cov is None:
            raise ValueError("no covariance kept: call with keep_cov=True")
        return self.cov

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
        Bootstrap standard error and expanded percentile interval (percentiles at
        ``Φ(±t_{R−1})`` for a group of ``R`` raters, see
        :func:`analysis.resample.expanded_percentiles`). A round in which no drawn rater
        scored a group does not count for that group.
    """
    n_raters = (np.asarray(counts) > 0).sum(axis=0)
    return _summarise(bootstrap_means(sums, counts, n_boot, seed), level, n_raters)


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
    weights = resample.rater_weights(sums.shape[0], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights @ sums) / (weights @ counts)


def _summarise(means: np.ndarray, level: float, n_raters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard error and expanded percentile interval of each group's replicates (columns)."""
    _, p_high = resample.expanded_percentiles(level, n_raters)
    low, high = np.full(means.shape[1], np.nan), np.full(means.shape[1], np.nan)
    # nanquantile is ~10x slower: pay for it only when some round missed a group.
    quantile = np.nanquantile if np.isnan(means).any() else np.quantile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group no round covers is NaN, as it should be
        for p in np.unique(p_high[np.isfinite(p_high)]):  # one quantile call per distinct panel size
            cols = p_high == p
            low[cols], high[cols] = quantile(means[:, cols], [1 - p, p], axis=0)
        return np.nanstd(means, axis=0, ddof=1), low, high


# --------------------------------------------------------------------------- aggregation


def _check_by(by: Sequence[str]) -> tuple[str, ...]:
    by = (by,) if isinstance(by, str) else tuple(by)
    allowed = {"cond", "content"}
    if not by or not set(by) <= allowed or "cond" not in by:
        raise ValueError(f"by must be ('cond',) or ('content', 'cond'), got {by!r}")
    return by


def cluster_variance(
    sums: sparse.sparray, counts: sparse.sparray, means: np.ndarray, *, keep_cov: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rater-clustered (CR1) variance of group means, and optionally their covariance.

    Parameters
    ----------
    sums, counts : sparse array, shape (n_raters, n_groups)
        Per rater and group: the sum of the rater's scores and how many there are.
    means : ndarray, shape (n_groups,)
        The group means (``sums.sum(0) / counts.sum(0)``).
    keep_cov : bool
        Also return the covariance of the means.

    Returns
    -------
    var : ndarray, shape (n_groups,)
        ``R_g/(R_g−1) · Σ_r (S_rg − n_rg·mean_g)² / N_g²`` with ``R_g`` raters in group g;
        NaN where ``R_g < 2`` (source: the module docstring).
    cov : ndarray, shape (n_groups, n_groups), or None
        ``D EᵀE D`` with ``E_rg = S_rg − n_rg·mean_g`` and ``D = diag(√(R_g/(R_g−1))/N_g)``:
        positive semi-definite, with ``var`` on its diagonal.
    """
    counts = sparse.csr_array(counts)
    resid = sparse.csr_array(sums) - counts.multiply(means[None, :])
    total = np.asarray(counts.sum(axis=0)).ravel()
    n_raters = np.asarray((counts > 0).sum(axis=0)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(n_raters >= 2, np.sqrt(n_raters / (n_raters - 1.0)) / total, np.nan)
    var = np.asarray(resid.multiply(resid).sum(axis=0)).ravel() * scale**2
    if not keep_cov:
        return var, None
    gram = (resid.T @ resid).toarray()
    return var, gram * scale[:, None] * scale[None, :]


def _rater_cells(values: pd.DataFrame, table: pd.DataFrame, by: tuple[str, ...]):
    """Per (rater, group) sums and counts as sparse ``(n_raters, n_groups)`` arrays."""
    group = pd.MultiIndex.from_frame(values[list(by)]) if len(by) > 1 else pd.Index(values[by[0]])
    col = table.index.get_indexer(group)
    row, raters = pd.factorize(values["rater"])
    shape = (len(raters), len(table))
    sums = sparse.csr_array((values["v"].to_numpy(dtype=float), (row, col)), shape=shape)
    counts = sparse.csr_array((np.ones(len(row)), (row, col)), shape=shape)
    sums.sum_duplicates()
    counts.sum_duplicates()
    return sums, counts


def _aggregate(
    values: pd.DataFrame, by: tuple[str, ...], ci: CI, n_boot: int, seed: int, level: float, keep_cov: bool
) -> tuple[pd.DataFrame, np.ndarray | None, list[str]]:
    """Group ``values`` (columns: rater, the ``by`` columns, ``v``) into a MOS table with the
    interval of ``ci``, the covariance of its means (``keep_cov``) and notes for the reader."""
    values = values[np.isfinite(values["v"].to_numpy(dtype=float))]
    if len(values) == 0:
        raise ValueError("no scores left to average")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    g = values.groupby(list(by), observed=True, sort=True)
    table = pd.DataFrame({"mos": g["v"].mean(), "sd": g["v"].std(ddof=1), "n": g["v"].size(),
                          "n_raters": g["rater"].nunique()})
    mean, n_raters = table["mos"].to_numpy(), table["n_raters"].to_numpy()
    cov = None
    if ci == "t":
        se = table["sd"].to_numpy() / np.sqrt(table["n"].to_numpy(dtype=float))
        low, high = t_interval(mean, table["sd"].to_numpy(), table["n"].to_numpy(), level)
        cov = np.diag(se**2) if keep_cov else None
    else:
        sums, counts = _rater_cells(values, table, by)
        if ci == "cluster":
            var, cov = cluster_variance(sums, counts, mean, keep_cov=keep_cov)
            se = np.sqrt(var)
            with np.errstate(invalid="ignore"):
                half = stats.t.ppf(0.5 + level / 2, n_raters - 1) * se
            low, high = mean - half, mean + half
        else:
            boot = (bootstrap_means(sums.toarray(), counts.toarray(), n_boot, seed) if sums.shape[0] >= 2
                    else np.full((n_boot, len(mean)), np.nan))
            se, low, high = _summarise(boot, level, n_raters)
            few = n_raters < 2  # resampling one rater gives a zero-width interval: undefined instead
            se, low, high = (np.where(few, np.nan, x) for x in (se, low, high))
            if keep_cov:
                full = boot[np.isfinite(boot).all(axis=1)]
                cov = np.atleast_2d(np.cov(full, rowvar=False)) if len(full) >= 2 else np.full((len(mean),) * 2, np.nan)
    table["se"], table["ci_low"], table["ci_high"], table["ci_method"] = se, low, high, ci
    notes = []
    few = int((n_raters < 2).sum())
    if few and ci != "t":
        notes.append(f"{few} group(s) scored by fewer than 2 raters: no {ci} interval (NaN)")
    return table.reset_index(), cov, notes


def _scores(df: pd.DataFrame, normalise: Normalisation) -> np.ndarray:
    if normalise is None:
        return df["score"].to_numpy(dtype=float)
    if normalise == "minmax":
        return normalize.minmax(df)["score_norm"].to_numpy(dtype=float)
    if normalise in ("zscore", "zscore-rescaled"):
        return normalize.zscore(df, rescale=normalise == "zscore-rescaled")["score_norm"].to_numpy(dtype=float)
    raise ValueError(f"normalize must be None, 'minmax', 'zscore' or 'zscore-rescaled', got {normalise!r}")


def _ratings_main(votes: pd.DataFrame) -> frames.Votes:
    df = main_votes(votes)
    _require_ratings(df)
    return df


def _require_ratings(df: pd.DataFrame) -> None:
    if frames.detect_kind(df) != "ratings":
        raise frames.FrameError(["MOS needs a ratings frame (cond, score), got a pairwise frame"], "ratings")


def _one_scale(df: pd.DataFrame, normalise: Normalisation) -> None:
    scales = sorted(map(str, df["method"].unique()))
    if len(scales) > 1 and normalise is None:
        raise frames.FrameError(
            [f"scores on several scales {scales} cannot be averaged raw; normalise them or split the frame"],
            "ratings",
        )


def mos(
    votes: pd.DataFrame,
    by: Sequence[str] = ("cond",),
    ci: CI = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    normalize: Normalisation = None,
    keep_cov: bool = False,
) -> MOSResult:
    """Mean opinion score per condition or per (content, condition).

    Parameters
    ----------
    votes : DataFrame
        A ratings frame (validated here unless a :class:`analysis.frames.Votes`).
        Repeat and gold rows are left out.
    by : ("cond",) or ("content", "cond")
        Grouping.
    ci : {"cluster", "bootstrap", "t"}
        The interval method (see the module docstring): rater-clustered (default),
        rater bootstrap, or Student-t over independent scores.
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
    keep_cov : bool
        Keep the covariance of the group means (by the interval method) in
        ``MOSResult.cov``, to test differences with. Off by default: per (content,
        condition) it can be large.

    Returns
    -------
    MOSResult
        ``.to_frame()`` columns: the ``by`` columns, ``mos, sd, n, n_raters, se,
        ci_low, ci_high, ci_method``.

    Raises
    ------
    analysis.frames.FrameError
        Invalid frame, a pairwise frame, or raw scores on several scales.
    """
    by = _check_by(by)
    df = _ratings_main(votes)
    _one_scale(df, normalize)
    values = pd.DataFrame({"rater": df["rater"].astype(str), "v": _scores(df, normalize)})
    for col in by:
        values[col] = df[col].astype(str)
    table, cov, notes = _aggregate(values, by, ci, n_boot, seed, level, keep_cov)
    if normalize is None:
        _within_scale(table, methods.METHODS[str(df["method"].iloc[0])], notes)
    params = {"by": by, "ci": ci, "n_boot": n_boot, "seed": seed, "level": level, "normalize": normalize,
              "notes": notes}
    return MOSResult(table, "mos", params, cov)


def _within_scale(table: pd.DataFrame, scale: methods.TestMethod, notes: list[str]) -> None:
    """Cut raw-score intervals at the ends of the scale, where a mean cannot go, and say where
    every rater gave one score (an interval of zero width that is the data's, not the method's)."""
    table["ci_low"] = table["ci_low"].clip(lower=scale.low)
    table["ci_high"] = table["ci_high"].clip(upper=scale.high)
    agreed = int(((table["sd"] == 0) & (table["n_raters"] >= 2)).sum())
    if agreed:
        notes.append(f"{agreed} group(s) got the same score from every rater: their interval has zero width")


def _reference_name(df: pd.DataFrame, reference: str | None) -> str:
    """The hidden-reference condition: the argument, or the rows a ``role`` column marks."""
    if reference is not None:
        reference = frames.normalize_id(str(reference))  # spelled as the votes' ids are
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
    ci: CI = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    keep_cov: bool = False,
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
    by, ci, n_boot, seed, level, keep_cov
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
    df = _ratings_main(votes)
    off = sorted(set(map(str, df["method"].unique())) - set(DMOS_METHODS))
    if off:
        raise frames.FrameError([f"DMOS is defined on {DMOS_METHODS} scores, got {off}"], "ratings")
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
    table, cov, notes = _aggregate(values, by, ci, n_boot, seed, level, keep_cov)
    params = {"by": by, "ci": ci, "n_boot": n_boot, "seed": seed, "level": level, "normalize": None,
              "reference": ref, "n_unpaired": int(np.isnan(ref_of).sum()), "notes": notes}
    return MOSResult(table, "dmos", params, cov)
