"""Per-subject normalisation of ratings and the maximum-likelihood subject model.

* :func:`minmax` — ``s' = 100·(s − s_min)/(s_max − s_min)`` per rater (the 2021
  challenge's Eq. 1).
* :func:`zscore` — ``(s − mean_r)/sd_r`` per rater (ITU-T P.913 / BT.500 style),
  optionally mapped back onto the panel's overall mean and spread.
* :func:`subject_model` — ``score = q_s + b_r + e``, ``e ~ N(0, v_r²)``: quality
  per stimulus, bias and inconsistency per rater, fitted by maximum likelihood
  (the model of SUREAL's ``MLE_CO`` and ITU-T P.913 §12), with 95% intervals
  from the observed information.

All three take ratings frames (validated with :func:`analysis.frames.validate`)
and use the rows they are given: pass :func:`analysis.screening.main_votes` of
the kept raters for an analysis.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from analysis import frames

Constant = Literal["nan", "mid", "raise"]
Variance = Literal["unbiased", "ml"]

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054


def _ratings(votes: pd.DataFrame) -> frames.Votes:
    """Validate a frame (a :class:`analysis.frames.Votes` is taken as it is) and insist on the ratings layout."""
    df = frames.validate(votes)
    if frames.detect_kind(df) != "ratings":
        raise frames.FrameError(["expected a ratings frame (cond, score), got a pairwise frame"], "ratings")
    return df


def _per_rater(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    codes, raters = pd.factorize(df["rater"].astype(str))
    return codes, df["score"].to_numpy(dtype=float), pd.Index(raters)


def _constant_raters(flat: np.ndarray, raters: pd.Index, constant: Constant) -> None:
    if constant == "raise" and flat.any():
        names = ", ".join(map(str, raters[flat][:5]))
        raise ValueError(f"{int(flat.sum())} rater(s) gave a single value throughout ({names}); "
                         "normalisation is undefined for them")


def minmax(votes: pd.DataFrame, *, constant: Constant = "nan", column: str = "score_norm") -> pd.DataFrame:
    """Per-rater min–max normalisation to 0..100.

    Parameters
    ----------
    votes : DataFrame
        A ratings frame; the rater's minimum and maximum are taken over the
        rows given.
    constant : {"nan", "mid", "raise"}
        What to do with a rater whose scores are all equal (``max == min``,
        the formula divides by zero). ``"nan"`` (default): the normalised
        score is NaN, so the rater drops out of anything averaged afterwards
        — such a rater says nothing about which stimulus is better.
        ``"mid"``: 50, the middle of the range. ``"raise"``: ``ValueError``.
    column : str
        Name of the added column.

    Returns
    -------
    DataFrame
        The validated frame with ``column`` added (float).
    """
    df = _ratings(votes)
    codes, x, raters = _per_rater(df)
    lo = np.full(len(raters), np.inf)
    hi = np.full(len(raters), -np.inf)
    np.minimum.at(lo, codes, x)
    np.maximum.at(hi, codes, x)
    span = hi - lo
    flat = span == 0
    _constant_raters(flat, raters, constant)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (x - lo[codes]) / span[codes]
    out[flat[codes]] = 50.0 if constant == "mid" else np.nan
    return df.assign(**{column: out})


def zscore(
    votes: pd.DataFrame, *, rescale: bool = False, constant: Constant = "nan", column: str = "score_norm"
) -> pd.DataFrame:
    """Per-rater z-scores ``(s − mean_r)/sd_r`` (sample sd, N − 1).

    Parameters
    ----------
    votes : DataFrame
        A ratings frame.
    rescale : bool
        Map the z-scores back to the scale of the data,
        ``z·sd_all + mean_all`` with the overall mean and sd of all rows,
        so a MOS of normalised scores reads on the original scale.
    constant : {"nan", "mid", "raise"}
        A rater with zero spread (or a single rating) has no z-score.
        ``"nan"`` (default) gives NaN, ``"mid"`` gives 0 (the rater's mean,
        i.e. ``mean_all`` when rescaled), ``"raise"`` raises ``ValueError``.
    column : str
        Name of the added column.

    Returns
    -------
    DataFrame
        The validated frame with ``column`` added (float).
    """
    df = _ratings(votes)
    codes, x, raters = _per_rater(df)
    n = np.bincount(codes).astype(float)
    mean = np.bincount(codes, x) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.bincount(codes, (x - mean[codes]) ** 2) / (n - 1))
    flat = ~(sd > 0)
    _constant_raters(flat, raters, constant)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean[codes]) / sd[codes]
    z[flat[codes]] = 0.0 if constant == "mid" else np.nan
    if rescale:
        z = z * np.std(x, ddof=1) + np.mean(x)
    return df.assign(**{column: z})


# --------------------------------------------------------------------------- subject model


@dataclass(frozen=True)
class SubjectModelResult:
    """Fit of ``score = q_s + b_r + e``, ``e ~ N(0, v_r²)``.

    Attributes
    ----------
    stimuli : DataFrame
        ``content, cond, quality, se, ci_low, ci_high, n`` — one row per stimulus.
    raters : DataFrame
        ``rater, bias, bias_se, bias_ci_low, bias_ci_high, inconsistency,
        inconsistency_se, inconsistency_ci_low, inconsistency_ci_high, n``.
    log_likelihood : float
        At the optimum, in nats, over all ratings.
    n_iter : int
        Alternating updates performed.
    converged : bool
        Whether the largest quality change fell below ``tol``.
    params : dict
        The arguments of :func:`subject_model`.
    """

    stimuli: pd.DataFrame
    raters: pd.DataFrame
    log_likelihood: float
    n_iter: int
    converged: bool
    params: dict

    def to_frame(self) -> pd.DataFrame:
        """Per-stimulus qualities with intervals (fit details in ``attrs``).

        Returns
        -------
        DataFrame
            A copy of ``stimuli``; ``attrs`` holds ``params``, ``log_likelihood``,
            ``n_iter`` and ``converged``.
        """
        out = self.stimuli.copy()
        out.attrs.update(self.params, log_likelihood=self.log_likelihood, n_iter=self.n_iter,
                         converged=self.converged)
        return out


def _stimulus_codes(df: pd.DataFrame) -> tuple[np.ndarray, pd.MultiIndex]:
    """Integer code per row for its (content, cond), and the stimuli in code order.

    Factorising the two columns separately and combining integer codes is much
    faster than factorising a MultiIndex of strings (300,000 rows: ~30 ms vs ~0.5 s).
    """
    c_code, contents = pd.factorize(df["content"].astype(str))
    d_code, conds = pd.factorize(df["cond"].astype(str))
    combined = c_code.astype(np.int64) * len(conds) + d_code
    uniq, s = np.unique(combined, return_inverse=True)
    stim = pd.MultiIndex.from_arrays([contents[uniq // len(conds)], conds[uniq % len(conds)]])
    return s.ravel(), stim


def _check_connected(s: np.ndarray, r: np.ndarray, n_s: int, n_r: int) -> None:
    """The model is identified only when the rater–stimulus graph is connected.

    Otherwise each component has its own free offset between qualities and
    biases, and the numbers of different components are not comparable.
    """
    graph = sparse.coo_matrix((np.ones(len(s)), (s, n_s + r)), shape=(n_s + n_r, n_s + n_r))
    n_comp, _ = csgraph.connected_components(graph, directed=False)
    if n_comp > 1:
        raise ValueError(
            f"the rater–stimulus design splits into {n_comp} disconnected groups; "
            "qualities of different groups are not comparable (no rater links them)"
        )


def _alternate(
    x: np.ndarray, s: np.ndarray, r: np.ndarray, n_s: int, n_r: int,
    max_iter: int, tol: float, floor: float, variance: Variance,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """Alternating closed-form updates of ``q``, ``b`` and ``v²``.

    ``q`` given ``(b, v)`` is the inverse-variance weighted mean of ``x − b``;
    ``b`` given ``(q, v)`` the rater's mean residual (one variance per rater, so
    unweighted). For ``v²`` given ``(q, b)``:

    * ``"ml"`` — the rater's mean squared residual, the likelihood's own
      stationary point (SUREAL ``MLE_CO``, ITU-T P.913 §12). Each step raises the
      likelihood, but the likelihood is unbounded: a rater who is much more
      precise than the rest pulls ``q`` onto their own scores and ``v_r → 0``.
    * ``"unbiased"`` — the squared residuals divided by their expected share,
      ``Σ_s (1 − h_rs) · (1 − 1/n_r)`` with leverage ``h_rs = w_r / W_s`` (the
      weight of the rater's score in ``q̂_s``) and one degree of freedom for
      ``b_r``. Given the other raters, ``E[res²] = (1 − h) v_r²``, so the update
      is a contraction towards the true ``v_r`` and cannot collapse.
    """
    n_r_obs = np.bincount(r, minlength=n_r).astype(float)
    q = np.bincount(s, x, n_s) / np.bincount(s, minlength=n_s)
    b = np.zeros(n_r)
    v2 = np.maximum(np.bincount(r, (x - q[s]) ** 2, n_r) / n_r_obs, floor**2)
    for it in range(1, max_iter + 1):
        w = 1.0 / v2[r]
        w_s = np.bincount(s, w, n_s)
        q_new = np.bincount(s, w * (x - b[r]), n_s) / w_s
        b = np.bincount(r, x - q_new[s], n_r) / n_r_obs
        # The likelihood only sees q + b: pin the gauge with mean(b) = 0 (as SUREAL does).
        shift = b.mean()
        b -= shift
        q_new += shift
        sq = np.bincount(r, (x - q_new[s] - b[r]) ** 2, n_r)
        dof = n_r_obs if variance == "ml" else np.bincount(r, 1.0 - w / w_s[s], n_r) * (1.0 - 1.0 / n_r_obs)
        v2 = np.maximum(sq / np.maximum(dof, 1e-12), floor**2)
        # One rating says nothing about a rater's spread (its residual is 0 once b_r absorbs
        # it); give such raters the panel's typical variance instead of the floor.
        few = n_r_obs < 2
        if few.any() and not few.all():
            v2[few] = np.median(v2[~few])
        step = np.max(np.abs(q_new - q))
        q = q_new
        if step < tol:
            return q, b, v2, it, True
    return q, b, v2, max_iter, False


def _covariance(
    s: np.ndarray, r: np.ndarray, v2: np.ndarray, n_s: int, n_r: int
) -> tuple[np.ndarray, np.ndarray]:
    """Variances of ``q`` and ``b`` from the observed information, under ``sum(b) = 0``.

    The information of ``(q, b)`` is ``[[D_q, C], [Cᵀ, D_b]]`` with
    ``C[s, r] = n_sr / v_r²``. Eliminating ``q`` leaves the rater block
    ``S_b = D_b − Cᵀ D_q⁻¹ C``, singular along the gauge direction (all ones).
    Its pseudo-inverse is the covariance of ``b`` under ``1ᵀb = 0``, and
    ``Cov(q) = D_q⁻¹ + M Cov(b) Mᵀ`` with ``M = D_q⁻¹ C`` — so a stimulus's
    interval includes the uncertainty of the biases it was corrected by, which
    SUREAL's diagonal ``1/sqrt(D_q)`` leaves out. The cross information between
    ``v`` and ``(q, b)`` has expectation zero and is neglected.
    Cost: O(n_ratings + n_s·n_r + n_r³).
    """
    w = 1.0 / v2[r]
    d_q = np.bincount(s, w, n_s)
    d_b = np.bincount(r, w, n_r)
    c = sparse.csr_matrix((w, (s, r)), shape=(n_s, n_r))  # duplicates (repeats) are summed
    m = sparse.diags(1.0 / d_q) @ c
    s_b = np.diag(d_b) - (c.T @ m).toarray()
    # S_b is symmetric with null space exactly span(1) (connected design), so its
    # pseudo-inverse is inv(S_b + 11ᵀ/n) − 11ᵀ/n: one solve instead of an eigendecomposition.
    ones = np.full((n_r, n_r), 1.0 / n_r)
    cov_b = np.linalg.inv(s_b + ones) - ones
    mc = np.asarray(m @ cov_b)
    var_q = 1.0 / d_q + np.asarray(m.multiply(mc).sum(axis=1)).ravel()
    return var_q, np.diag(cov_b).copy()


def subject_model(
    votes: pd.DataFrame,
    *,
    max_iter: int = 2000,
    tol: float = 1e-9,
    min_inconsistency: float = 1e-3,
    variance: Variance = "unbiased",
) -> SubjectModelResult:
    """Fit quality per stimulus and bias/inconsistency per rater by maximum likelihood.

    Model (SUREAL ``MLE_CO``; ITU-T P.913 §12): the score of rater ``r`` on
    stimulus ``s`` (a (content, cond) pair) is ``q_s + b_r + e`` with
    ``e ~ N(0, v_r²)``; biases are centred (``mean(b) = 0``). Any subset of
    (stimulus, rater) cells may be rated, and a cell may be rated more than once.

    Parameters
    ----------
    votes : DataFrame
        A ratings frame; every row given is fitted (pass
        :func:`analysis.screening.main_votes` to leave out repeats and gold).
    max_iter : int
        Cap on alternating updates.
    tol : float
        Stop when no quality moves by more than this (score units).
    min_inconsistency : float
        Floor on ``v_r`` (score units), a numerical guard against ``v_r → 0``.
    variance : {"unbiased", "ml"}
        How ``v_r`` is updated (see :func:`_alternate`). ``"ml"`` is the exact
        maximum-likelihood fixed point of SUREAL's ``MLE_CO`` and P.913 §12 —
        but the likelihood of this model is unbounded, and when one rater is
        much more precise than the others the ML iteration collapses onto
        that rater (``v_r`` at the floor; a ``RuntimeWarning`` says so).
        ``"unbiased"`` (default) divides each rater's squared residuals by
        their degrees of freedom (the leverage of the rater's own score in
        ``q̂`` removed), which cannot collapse and gives intervals with their
        nominal coverage; ``q`` and ``b`` are the maximum-likelihood values
        given those variances. With many raters of similar precision the two
        agree to ``O(1/n_raters)`` in ``v``.

    Returns
    -------
    SubjectModelResult
        95% intervals: ``q ± 1.96·se`` and ``b ± 1.96·se`` from the observed
        information (see :func:`_covariance`); for ``v`` the Wald interval of
        ``log v`` (``se(log v) = 1/sqrt(2 n_r)``), which stays positive.

    Raises
    ------
    analysis.frames.FrameError
        For a frame that is not a valid ratings frame.
    ValueError
        For an empty frame, mixed scales, or a design split into groups that
        no rater connects.
    """
    df = _ratings(votes)
    if len(df) == 0:
        raise ValueError("no ratings to fit")
    scales = df["method"].unique()
    if len(scales) > 1:
        raise ValueError(f"ratings on several scales {sorted(map(str, scales))}; fit one scale at a time")
    s, stim = _stimulus_codes(df)
    r, raters = pd.factorize(df["rater"].astype(str))
    x = df["score"].to_numpy(dtype=float)
    n_s, n_r = len(stim), len(raters)
    _check_connected(s, r, n_s, n_r)

    if variance not in ("unbiased", "ml"):
        raise ValueError(f"variance must be 'unbiased' or 'ml', got {variance!r}")
    q, b, v2, n_iter, converged = _alternate(x, s, r, n_s, n_r, max_iter, tol, min_inconsistency, variance)
    collapsed = (v2 <= min_inconsistency**2 * (1 + 1e-9)) & (np.bincount(r, minlength=n_r) >= 2)
    if collapsed.any():
        names = ", ".join(map(str, raters[collapsed][:5]))
        warnings.warn(f"subject model: inconsistency of {int(collapsed.sum())} rater(s) ({names}) collapsed to "
                      f"the floor {min_inconsistency}; the fit follows them exactly"
                      + (" (use variance='unbiased')" if variance == "ml" else ""), RuntimeWarning, stacklevel=2)
    var_q, var_b = _covariance(s, r, v2, n_s, n_r)
    res = x - q[s] - b[r]
    loglik = float(-0.5 * np.sum(np.log(2 * np.pi * v2[r]) + res**2 / v2[r]))

    n_stim = np.bincount(s, minlength=n_s)
    se_q = np.sqrt(var_q)
    stimuli = pd.DataFrame({
        "content": stim.get_level_values(0), "cond": stim.get_level_values(1),
        "quality": q, "se": se_q, "ci_low": q - Z95 * se_q, "ci_high": q + Z95 * se_q, "n": n_stim,
    }).sort_values(["content", "cond"], ignore_index=True)

    n_rat = np.bincount(r, minlength=n_r)
    v = np.sqrt(v2)
    se_b = np.sqrt(np.maximum(var_b, 0.0))
    se_logv = 1.0 / np.sqrt(2.0 * n_rat)
    rater_frame = pd.DataFrame({
        "rater": np.asarray(raters, dtype=object),
        "bias": b, "bias_se": se_b, "bias_ci_low": b - Z95 * se_b, "bias_ci_high": b + Z95 * se_b,
        "inconsistency": v, "inconsistency_se": v * se_logv,
        "inconsistency_ci_low": v * np.exp(-Z95 * se_logv), "inconsistency_ci_high": v * np.exp(Z95 * se_logv),
        "n": n_rat,
    }).sort_values("rater", ignore_index=True)
    params = {"max_iter": max_iter, "tol": tol, "min_inconsistency": min_inconsistency, "variance": variance,
              "method": str(scales[0]), "model": "score = q_s + b_r + N(0, v_r^2), mean(b) = 0"}
    return SubjectModelResult(stimuli, rater_frame, loglik, n_iter, converged, params)


# --------------------------------------------------------------------------- SUREAL cross-check


def sureal_dataset(votes: pd.DataFrame) -> tuple[Any, list[tuple[str, str]]]:
    """The ratings of a frame as a SUREAL dataset, to cross-check :func:`subject_model`.

    Parameters
    ----------
    votes : DataFrame
        A ratings frame; every row given is used (pass
        :func:`analysis.screening.main_votes` to leave out repeats and gold).

    Returns
    -------
    dataset : object
        With ``ref_videos`` and ``dis_videos`` as SUREAL's ``RawDatasetReader`` reads
        them (one distorted video per (content, cond), its opinion scores keyed by rater).
        A rater who scored a stimulus several times keeps the last score (SUREAL's layout
        holds one score per rater and video).
    keys : list of (content, cond)
        The stimulus of each distorted video, in SUREAL's order (``quality_scores``).

    Examples
    --------
    >>> from sureal.dataset_reader import RawDatasetReader  # doctest: +SKIP
    >>> from sureal.subjective_model import MaximumLikelihoodEstimationModelContentOblivious as MLE_CO  # doctest: +SKIP
    >>> ds, keys = sureal_dataset(votes)  # doctest: +SKIP
    >>> MLE_CO(RawDatasetReader(ds)).run_modeling()["quality_scores"]  # doctest: +SKIP
    """
    df = _ratings(votes)
    cid = {c: i for i, c in enumerate(sorted(df["content"].astype(str).unique()))}
    groups = df.groupby(["content", "cond"], observed=True)
    dataset = SimpleNamespace(
        ref_videos=[{"content_id": i, "content_name": c, "path": f"ref/{c}"} for c, i in cid.items()],
        dis_videos=[
            {"content_id": cid[str(c)], "asset_id": k, "path": f"{c}/{d}",
             "os": dict(zip(g["rater"].astype(str), g["score"].astype(float), strict=True))}
            for k, ((c, d), g) in enumerate(groups)
        ],
    )
    return dataset, [(str(c), str(d)) for (c, d), _ in groups]

