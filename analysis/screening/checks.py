"""The per-rater statistics: consistency on repeats, gold accuracy, BT.500 counts, the leave-one-out
correlation of ratings, position bias and timing (see :mod:`analysis.screening`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.methods import METHODS
from analysis.screening.rules import ScreeningRules


def _steps(df: pd.DataFrame, slider_step: float) -> np.ndarray:
    """Size of one scale step per row: 1 on category scales, ``slider_step`` on sliders."""
    sliders = [name for name, method in METHODS.items() if method.slider]
    return np.where(df["method"].isin(sliders).to_numpy(dtype=bool), slider_step, 1.0)


def _value(df: pd.DataFrame, kind: str) -> np.ndarray:
    col = "pref" if kind == "pairwise" else "score"
    return df[col].to_numpy(dtype=float)


def _repeat_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Each repeat row joined to the first showing it points at (same rater).

    ``repeat_of`` is a trial id among the rater's rows. Trial ids are unique per
    session, so the match is made inside the repeat's session first and, for
    repeats whose session holds no such trial, among the rater's rows where the
    trial id is unambiguous.
    """
    cols = ["rater", "session", "trial", "_value", "_cond_a"]
    rep = df.loc[df["repeat_of"].notna(), [*cols, "repeat_of", "_step"]].copy()
    rep["_row"] = np.arange(len(rep))
    orig = df[cols].rename(columns={"trial": "repeat_of", "_value": "_first", "_cond_a": "_first_cond_a"})
    same = rep.merge(orig, on=["rater", "session", "repeat_of"], how="inner")
    rest = rep[~rep["_row"].isin(same["_row"])]
    unique = orig.drop(columns="session").drop_duplicates(["rater", "repeat_of"], keep=False)
    other = rest.merge(unique, on=["rater", "repeat_of"], how="inner")
    return pd.concat([same, other], ignore_index=True)


def _consistency(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    pairs = _repeat_pairs(df)
    if kind == "pairwise":
        # A repeat may list the pair the other way round; put it back on the first showing's axis.
        flip = (pairs["_cond_a"] != pairs["_first_cond_a"]).to_numpy(dtype=bool)
        second = np.where(flip, -pairs["_value"].to_numpy(float), pairs["_value"].to_numpy(float))
        agree = np.sign(second) == np.sign(pairs["_first"].to_numpy(float))
    else:
        delta = np.abs(pairs["_value"].to_numpy(float) - pairs["_first"].to_numpy(float))
        agree = delta <= pairs["_step"].to_numpy(float) + 1e-9
    pairs = pairs.assign(_agree=agree.astype(float))
    g = pairs.groupby("rater", observed=True)["_agree"]
    return pd.DataFrame({"consistency": g.mean(), "n_repeats": g.size()})


def _gold(df: pd.DataFrame, kind: str, default_tolerance: float) -> pd.DataFrame:
    """Gold accuracy per rater, each answer judged by its own item's tolerance.

    A row's ``gold_tolerance`` (answer units, as the manifest sets it per item: ``|answer −
    expected| ≤ tolerance``) decides; rows without one fall back to ``default_tolerance``
    steps for ratings and to "same sign as expected" for pairwise answers.
    """
    gold = df[df["gold_expected"].notna().to_numpy(dtype=bool)]
    expected = gold["gold_expected"].to_numpy(dtype=float)
    value = gold["_value"].to_numpy(float)
    if kind == "pairwise":
        fallback = np.sign(value) == np.sign(expected)
    else:
        fallback = np.abs(value - expected) <= default_tolerance * gold["_step"].to_numpy(float) + 1e-9
    own = _item_tolerance(gold)
    with np.errstate(invalid="ignore"):
        correct = np.where(np.isnan(own), fallback, np.abs(value - expected) <= own + 1e-9)
    g = gold.assign(_correct=correct.astype(float)).groupby("rater", observed=True)["_correct"]
    return pd.DataFrame({"gold_accuracy": g.mean(), "n_gold": g.size()})


def _item_tolerance(gold: pd.DataFrame) -> np.ndarray:
    """Each gold row's own tolerance (NaN where the frame has none)."""
    if "gold_tolerance" not in gold.columns:
        return np.full(len(gold), np.nan)
    return pd.to_numeric(gold["gold_tolerance"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def bt500_counts(main: pd.DataFrame) -> pd.DataFrame:
    """ITU-R BT.500 Annex 1 §2.3.1 screening counts per rater.

    For every stimulus (content, condition) with at least 2 scores: mean ``u``,
    standard deviation ``S`` (N − 1 in the denominator, as in the
    Recommendation) and kurtosis ``β2 = m4 / m2²`` (moments about the mean with
    N in the denominator). The band is ``u ± 2S`` when ``2 ≤ β2 ≤ 4`` (close to
    normal) and ``u ± √20·S`` otherwise. ``P`` counts a rater's scores at or
    above the upper edge, ``Q`` those at or below the lower edge, ``N`` the
    rater's scores. A stimulus whose scores are all equal has no spread and
    counts for nobody.

    Parameters
    ----------
    main : DataFrame
        Validated ratings rows (normally :func:`main_votes`).

    Returns
    -------
    DataFrame
        Indexed by rater: ``bt500_p``, ``bt500_q``, ``bt500_n``.
    """
    x = main["score"].to_numpy(dtype=float)
    stim = pd.MultiIndex.from_arrays([main["content"], main["cond"]])
    codes, _ = pd.factorize(stim)
    n = np.bincount(codes).astype(float)
    mean = np.bincount(codes, x) / n
    dev = x - mean[codes]
    m2 = np.bincount(codes, dev**2) / n
    m4 = np.bincount(codes, dev**4) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        beta2 = m4 / m2**2
        sd = np.sqrt(m2 * n / (n - 1))
    k = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, np.sqrt(20.0))
    usable = (n >= 2) & (m2 > 0)
    upper = usable[codes] & (x >= mean[codes] + k[codes] * sd[codes])
    lower = usable[codes] & (x <= mean[codes] - k[codes] * sd[codes])
    counts = pd.DataFrame(
        {"bt500_p": upper.astype(int), "bt500_q": lower.astype(int), "bt500_n": 1, "rater": main["rater"]}
    )
    return counts.groupby("rater", observed=True)[["bt500_p", "bt500_q", "bt500_n"]].sum()


def bt500_rejected(counts: pd.DataFrame, fraction: float = 0.05, balance: float = 0.3) -> pd.Series:
    """Apply the BT.500 rule ``(P+Q)/N > fraction and |P−Q|/(P+Q) < balance`` to :func:`bt500_counts`.

    Parameters
    ----------
    counts : DataFrame
        ``bt500_p, bt500_q, bt500_n`` per rater, as :func:`bt500_counts` returns.
    fraction : float
        Largest share of scores outside the band a rater may have.
    balance : float
        A rater is rejected only when the outliers are this balanced (``|P−Q|/(P+Q)``
        below it), i.e. not one-sided.

    Returns
    -------
    Series of bool
        Indexed like ``counts``: True for a rejected rater (never for ``P + Q = 0``).
    """
    p, q, n = (counts[c].to_numpy(float) for c in ("bt500_p", "bt500_q", "bt500_n"))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (p + q) / n
        skew = np.abs(p - q) / (p + q)
    return pd.Series((share > fraction) & (skew < balance), index=counts.index)


def _residual_kurtosis(main: pd.DataFrame) -> pd.Series:
    """β2 = m4/m2² of each rater's deviations from the per-stimulus panel mean (3 for normal noise).

    NaN for raters with fewer than 4 scores or (numerically) no spread.
    """
    codes, _ = pd.factorize(pd.MultiIndex.from_arrays([main["content"], main["cond"]]))
    x = main["score"].to_numpy(dtype=float)
    dev = x - (np.bincount(codes, x) / np.bincount(codes))[codes]
    r, raters = pd.factorize(main["rater"])
    n = np.bincount(r).astype(float)
    centred = dev - (np.bincount(r, dev) / n)[r]
    m2 = np.bincount(r, centred**2) / n
    m4 = np.bincount(r, centred**4) / n
    usable = (n >= 4) & (m2 > 1e-12 * (1.0 + np.bincount(r, x**2) / n))
    with np.errstate(divide="ignore", invalid="ignore"):
        beta2 = np.where(usable, m4 / m2**2, np.nan)
    return pd.Series(beta2, index=pd.Index(raters, name="rater"))


def _item_table(main: pd.DataFrame, level: str) -> pd.DataFrame:
    """One value per (rater, item) of a ratings frame: the rater's mean score on the item.

    Items are (content, cond) at ``level="stimulus"`` and cond at ``"condition"``; they
    are integer codes (only their equality matters), built without string keys.
    """
    item = pd.factorize(main["cond"])[0].astype(np.int64)
    if level == "stimulus":
        item = pd.factorize(main["content"])[0].astype(np.int64) * (int(item.max(initial=0)) + 1) + item
    tab = pd.DataFrame({"rater": main["rater"].to_numpy(), "item": item, "v": main["score"].to_numpy(float)})
    return tab.groupby(["rater", "item"], observed=True, as_index=False)["v"].mean()


def _loo_level(main: pd.DataFrame, rules: ScreeningRules) -> str:
    if rules.loo_level != "auto":
        return rules.loo_level
    raters_per_item = _item_table(main, "stimulus").groupby("item", observed=True).size()
    return "stimulus" if raters_per_item.median() >= rules.loo_auto_min_raters else "condition"


def _loo_corr(main: pd.DataFrame, level: str) -> pd.DataFrame:
    """Pearson correlation of each rater with the mean of the *other* raters per item, and its test.

    ``loo_p`` is the one-sided p-value of ``ρ > 0`` from ``t = r·√((n−2)/(1−r²))`` on
    ``n − 2`` degrees of freedom (exact for normal scores; under a random clicker, whose
    scores are independent of the items, r is centred on 0 with variance ≈ 1/(n−1)
    whatever the scale). NaN below 3 shared items. A rater who gives one answer
    throughout has no correlation to measure: r is set to 0 ("no evidence of
    agreement"), so the test can catch them.
    """
    tab = _item_table(main, level)
    g = tab.groupby("item", observed=True)["v"]
    total, count = g.transform("sum").to_numpy(), g.transform("size").to_numpy()
    shared = count > 1
    v = tab["v"].to_numpy()[shared]
    o = (total[shared] - v) / (count[shared] - 1)
    code, raters = pd.factorize(tab["rater"].to_numpy()[shared], sort=True)
    n = np.bincount(code, minlength=len(raters))
    # Per-rater Pearson correlation in two passes (centred sums), as np.corrcoef computes it.
    dv = v - (np.bincount(code, v, len(raters)) / n)[code]
    do = o - (np.bincount(code, o, len(raters)) / n)[code]
    svv, soo = np.bincount(code, dv * dv, len(raters)), np.bincount(code, do * do, len(raters))
    svo = np.bincount(code, dv * do, len(raters))
    flat = (_group_ptp(code, v, len(raters)) == 0) | (_group_ptp(code, o, len(raters)) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(svo / np.sqrt(svv * soo), -1.0, 1.0)
        r = np.where(n < 3, np.nan, np.where(flat, 0.0, r))
        t = r * np.sqrt((n - 2) / np.maximum(1.0 - r * r, 0.0))
        p = np.where(n < 3, np.nan, stats.t.sf(t, np.maximum(n - 2, 1)))
    return pd.DataFrame({"loo_corr": r, "loo_p": p, "n_loo_items": n}, index=pd.Index(raters, name="rater"))


def _group_ptp(code: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """Range (max − min) of ``x`` within each group."""
    hi, lo = np.full(n_groups, -np.inf), np.full(n_groups, np.inf)
    np.maximum.at(hi, code, x)
    np.minimum.at(lo, code, x)
    return hi - lo


def _position(df: pd.DataFrame) -> pd.DataFrame:
    """Share of decided trials where the rater chose the clip on the left, with a binomial test.

    Trials without a preference (``pref == 0``) or without ``shown_left`` carry
    no side and are left out. The test is two-sided against 0.5; with p0 = 0.5
    the binomial is symmetric, so ``2·min(P[X ≤ k], P[X ≥ k])`` is exact.
    """
    rows = df[df["shown_left"].notna().to_numpy(dtype=bool) & (df["_value"].to_numpy() != 0)]
    left_a = (rows["shown_left"] == "a").to_numpy(dtype=bool)
    chose_left = np.where(left_a, rows["_value"].to_numpy() > 0, rows["_value"].to_numpy() < 0)
    g = pd.DataFrame({"rater": rows["rater"], "left": chose_left.astype(float)}).groupby("rater", observed=True)
    left = g["left"].sum()
    k, n = left.to_numpy(), g["left"].size().to_numpy()
    p = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5)))
    return pd.DataFrame({"left_share": k / n, "position_p": p}, index=left.index)


def _timing(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("rater", observed=True)
    out = pd.DataFrame({"median_watch_ms": g["watch_ms"].median()})
    out["median_answer_ms"] = g["answer_ms"].median() if "answer_ms" in df.columns else np.nan
    return out.astype(float)
