"""Rater screening: who stays in the panel, and which rule dropped the others.

Every rule of PROTOCOL.md §3 is a field of :class:`ScreeningRules`; setting a
field to ``None`` disables that rule. :func:`screen` computes every statistic
for every rater (whether or not its rule is enabled, so a report can show them)
and marks a rater dropped when at least one enabled rule fires.

Rule names, as they appear in ``dropped_by``:

``consistency_rank``
    one of the ``drop_least_consistent`` raters with the lowest agreement on
    consistency repeats (the 2021 challenge dropped 3 of 15).
``consistency``
    agreement on repeats below ``min_consistency``.
``gold``
    accuracy on gold trials below ``min_gold_accuracy``.
``bt500``
    ITU-R BT.500 Annex 1 §2.3.1 kurtosis-based rejection (ratings only).
``loo_corr``
    correlation with the leave-one-out panel mean below ``min_loo_corr``.
``position_bias``
    chose the left clip significantly and substantially more (or less) often
    than half the time (pairwise only).
``too_fast``
    median time per trial below ``min_median_watch_ms`` (or below
    ``min_median_answer_ms`` when the frame has an ``answer_ms`` column).

Statistics use the rows they are defined on: consistency uses repeat rows and
the first showings they point at, gold accuracy uses gold rows, BT.500 and the
leave-one-out correlation use :func:`main_votes` (gold clips would distort the
panel's distribution), position bias and timing use every row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from analysis import frames

#: Column order of :attr:`ScreeningResult.raters`.
RATER_COLUMNS = (
    "rater",
    "n_votes",
    "consistency",
    "n_repeats",
    "gold_accuracy",
    "n_gold",
    "kurtosis",
    "bt500_p",
    "bt500_q",
    "loo_corr",
    "n_loo_items",
    "left_share",
    "position_p",
    "median_watch_ms",
    "median_answer_ms",
    "kept",
    "dropped_by",
)

RULE_NAMES = ("consistency_rank", "consistency", "gold", "bt500", "loo_corr", "position_bias", "too_fast")


@dataclass(frozen=True)
class ScreeningRules:
    """Thresholds of the screening rules; ``None`` disables a rule.

    The defaults are what a real study would use: lenient enough that an
    attentive rater is never dropped by chance, strict enough to catch
    spammers, careless raters and raters who always pick one side.

    Attributes
    ----------
    drop_least_consistent : int or None
        Drop the k raters with the lowest agreement on consistency repeats
        (among raters who saw repeats; ties broken by rater id). Off by
        default because it drops k raters even from a perfect panel; the 2021
        challenge used k = 3 of 15.
    min_consistency : float or None
        Drop raters whose share of agreeing repeats is below this. Off by
        default: how often an attentive rater agrees with themselves depends
        on the design (close conditions and "no preference" answers make
        pairwise repeats disagree often — about half the time in
        :func:`analysis.simulate.simulate_pairwise`'s default study, where
        spammers reach a third), so a threshold must come from a pilot.
        On rating scales attentive raters typically exceed 0.8.
    slider_step : float
        What "one step" means on ``slider100`` (category scales: 1).
    min_gold_accuracy : float or None
        Drop raters whose share of correct gold answers is below this.
    gold_tolerance : float
        A rating gold answer is correct when ``|score - expected|`` is at most
        this many steps (P.910 toolkit: ±1). Pairwise gold answers are correct
        when the sign of ``pref`` matches the sign of the expected answer.
    bt500_fraction, bt500_balance : float or None, float
        BT.500 rejects a rater when ``(P+Q)/N > bt500_fraction`` and
        ``|P-Q|/(P+Q) < bt500_balance`` (0.05 and 0.3 in the Recommendation).
        ``bt500_fraction=None`` disables the rule.
    min_loo_corr : float or None
        Drop raters whose Pearson correlation with the mean of the other
        raters (per stimulus for ratings, per content and pair for pairwise)
        is below this.
    loo_min_items : int
        Raters with fewer shared items than this get no correlation (NaN)
        and are not dropped by ``loo_corr``. 20 by default: over fewer items the
        correlation of an attentive rater's graded votes is too noisy to judge them by
        (a 16-vote session of the demo dropped half of the honest simulated raters at 5).
    loo_level : {"auto", "stimulus", "condition"}
        Items of the leave-one-out correlation. ``"stimulus"``: per
        (content, cond) for ratings, per (content, pair) for pairwise.
        ``"condition"``: per cond / per pair, pooled over contents.
        ``"auto"``: ``"stimulus"`` when the median item was answered by at
        least ``loo_auto_min_raters`` raters, else ``"condition"`` — in a
        large pairwise study (thousands of contents, ~1 vote per content and
        pair) the per-content panel mean of the *other* raters hardly exists.
    loo_auto_min_raters : int
        See ``loo_level``.
    max_position_p : float or None
        Position-bias rule: two-sided binomial p-value of "chose the left
        clip" against 0.5 must be below this ...
    min_position_effect : float
        ... and ``|left_share - 0.5|`` above this, for the rule to fire.
    min_median_watch_ms : float or None
        Drop raters whose median ``watch_ms`` is below this.
    min_median_answer_ms : float or None
        Drop raters whose median ``answer_ms`` is below this (only when the
        frame carries an ``answer_ms`` column).
    """

    drop_least_consistent: int | None = None
    min_consistency: float | None = None
    slider_step: float = 10.0
    min_gold_accuracy: float | None = 0.8
    gold_tolerance: float = 1.0
    bt500_fraction: float | None = 0.05
    bt500_balance: float = 0.3
    min_loo_corr: float | None = 0.3
    loo_min_items: int = 20
    loo_level: Literal["auto", "stimulus", "condition"] = "auto"
    loo_auto_min_raters: int = 5
    max_position_p: float | None = 0.001
    min_position_effect: float = 0.15
    min_median_watch_ms: float | None = 1000.0
    min_median_answer_ms: float | None = 500.0

    @classmethod
    def none(cls) -> ScreeningRules:
        """Rules with every rule disabled (everyone is kept).

        Returns
        -------
        ScreeningRules
        """
        return cls(
            drop_least_consistent=None,
            min_consistency=None,
            min_gold_accuracy=None,
            bt500_fraction=None,
            min_loo_corr=None,
            max_position_p=None,
            min_median_watch_ms=None,
            min_median_answer_ms=None,
        )


@dataclass(frozen=True)
class ScreeningResult:
    """Per-rater statistics and decisions, with the rules that produced them.

    Attributes
    ----------
    raters : DataFrame
        One row per rater, columns :data:`RATER_COLUMNS`.
    rules : ScreeningRules
        The rules applied.
    kind : {"pairwise", "ratings"}
        Layout of the screened frame.
    loo_level : {"stimulus", "condition", ""}
        Items the leave-one-out correlation used ("" when there were no votes).
    """

    raters: pd.DataFrame
    rules: ScreeningRules
    kind: str
    loo_level: str = ""

    @property
    def kept(self) -> list[str]:
        """Raters who passed every enabled rule."""
        return self.raters.loc[self.raters["kept"], "rater"].tolist()

    @property
    def dropped(self) -> list[str]:
        """Raters dropped by at least one rule."""
        return self.raters.loc[~self.raters["kept"], "rater"].tolist()

    def dropped_by(self, rule: str) -> list[str]:
        """Raters that ``rule`` (one of :data:`RULE_NAMES`) dropped.

        Parameters
        ----------
        rule : str
            One of :data:`RULE_NAMES`.

        Returns
        -------
        list of str
            Rater ids, in table order (a rater may also have been dropped by other rules).

        Raises
        ------
        ValueError
            For an unknown rule name.
        """
        if rule not in RULE_NAMES:
            raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULE_NAMES)}")
        fired = self.raters["dropped_by"].str.split(";").apply(lambda names: rule in names)
        return self.raters.loc[fired, "rater"].tolist()

    def kept_votes(self, votes: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``votes`` given by kept raters (all row types, original index).

        Parameters
        ----------
        votes : DataFrame
            A vote frame with a ``rater`` column (normally the one screened).

        Returns
        -------
        DataFrame
        """
        return votes[votes["rater"].astype("string").isin(self.kept).to_numpy(dtype=bool)]

    def to_frame(self) -> pd.DataFrame:
        """The per-rater table, with the rules recorded in ``DataFrame.attrs``.

        Returns
        -------
        DataFrame
            A copy of ``raters``; ``attrs`` holds ``rules`` (as a dict), ``kind`` and
            ``loo_level``.
        """
        out = self.raters.copy()
        out.attrs["rules"] = asdict(self.rules)
        out.attrs["kind"] = self.kind
        out.attrs["loo_level"] = self.loo_level
        return out


# --------------------------------------------------------------------------- helpers


def main_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The rows an analysis fits: neither consistency repeats nor gold trials.

    Parameters
    ----------
    votes : DataFrame
        A pairwise or ratings frame (validated here).

    Returns
    -------
    DataFrame
        Validated rows with null ``repeat_of`` and null ``gold_expected``.
    """
    return _main(frames.validate(votes))


def _main(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`main_votes` of an already validated frame (no second validation)."""
    keep = (df["repeat_of"].isna() & df["gold_expected"].isna()).to_numpy(dtype=bool)
    return df[keep].reset_index(drop=True)


def _steps(df: pd.DataFrame, slider_step: float) -> np.ndarray:
    """Size of one scale step per row: 1 on category scales, ``slider_step`` on sliders."""
    return np.where(df["scale"].to_numpy(dtype=object) == "slider100", slider_step, 1.0)


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


def _gold(df: pd.DataFrame, kind: str, tolerance: float) -> pd.DataFrame:
    gold = df[df["gold_expected"].notna().to_numpy(dtype=bool)]
    expected = gold["gold_expected"].to_numpy(dtype=float)
    value = gold["_value"].to_numpy(float)
    if kind == "pairwise":
        correct = np.sign(value) == np.sign(expected)
    else:
        correct = np.abs(value - expected) <= tolerance * gold["_step"].to_numpy(float) + 1e-9
    g = gold.assign(_correct=correct.astype(float)).groupby("rater", observed=True)["_correct"]
    return pd.DataFrame({"gold_accuracy": g.mean(), "n_gold": g.size()})


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


def _item_table(main: pd.DataFrame, kind: str, level: str) -> pd.DataFrame:
    """One value per (rater, item): the rater's mean answer on the item.

    Items are (content, cond) for ratings and (content, unordered pair) for
    pairwise, with ``pref`` oriented towards the alphabetically first
    condition; at ``level="condition"`` the content is left out. Items are
    integer codes (only their equality matters), built without string keys.
    """
    n = len(main)
    if kind == "ratings":
        item = pd.factorize(main["cond"])[0].astype(np.int64)
        value = main["score"].to_numpy(float)
    else:
        codes, names = pd.factorize(pd.concat([main["cond_a"], main["cond_b"]], ignore_index=True), sort=True)
        a, b = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
        item = np.minimum(a, b) * len(names) + np.maximum(a, b)
        value = np.where(a > b, -1.0, 1.0) * main["pref"].to_numpy(float)
    if level == "stimulus":
        item = pd.factorize(main["content"])[0].astype(np.int64) * (int(item.max(initial=0)) + 1) + item
    tab = pd.DataFrame({"rater": main["rater"].to_numpy(), "item": item, "v": value})
    return tab.groupby(["rater", "item"], observed=True, as_index=False)["v"].mean()


def _loo_level(main: pd.DataFrame, kind: str, rules: ScreeningRules) -> str:
    if rules.loo_level != "auto":
        return rules.loo_level
    raters_per_item = _item_table(main, kind, "stimulus").groupby("item", observed=True).size()
    return "stimulus" if raters_per_item.median() >= rules.loo_auto_min_raters else "condition"


def _loo_corr(main: pd.DataFrame, kind: str, level: str, min_items: int) -> pd.DataFrame:
    """Pearson correlation of each rater with the mean of the *other* raters per item.

    A rater who gives one answer throughout has no correlation to measure; the
    value is set to 0 ("no evidence of agreement") rather than NaN so the rule
    can catch such raters.
    """
    tab = _item_table(main, kind, level)
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
    r = np.where(n < min_items, np.nan, np.where(flat, 0.0, r))
    return pd.DataFrame({"loo_corr": r, "n_loo_items": n}, index=pd.Index(raters, name="rater"))


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


# --------------------------------------------------------------------------- the rules


def _decide(table: pd.DataFrame, rules: ScreeningRules) -> dict[str, pd.Series]:
    """For each enabled rule, a boolean Series (indexed by rater) of who it drops."""
    fired: dict[str, pd.Series] = {}
    if rules.drop_least_consistent is not None:
        k = int(rules.drop_least_consistent)
        seen = table[table["n_repeats"] > 0].reset_index().sort_values(["consistency", "rater"], kind="stable")
        worst = set(seen["rater"].iloc[: max(k, 0)])
        fired["consistency_rank"] = pd.Series(table.index.isin(worst), index=table.index)
    if rules.min_consistency is not None:
        fired["consistency"] = table["consistency"] < rules.min_consistency
    if rules.min_gold_accuracy is not None:
        fired["gold"] = table["gold_accuracy"] < rules.min_gold_accuracy
    if rules.bt500_fraction is not None:
        fired["bt500"] = table["_bt500_reject"].eq(True)
    if rules.min_loo_corr is not None:
        fired["loo_corr"] = table["loo_corr"] < rules.min_loo_corr
    if rules.max_position_p is not None:
        fired["position_bias"] = (table["position_p"] < rules.max_position_p) & (
            (table["left_share"] - 0.5).abs() > rules.min_position_effect
        )
    fast = pd.Series(False, index=table.index)
    if rules.min_median_watch_ms is not None:
        fast |= table["median_watch_ms"] < rules.min_median_watch_ms
    if rules.min_median_answer_ms is not None:
        fast |= table["median_answer_ms"] < rules.min_median_answer_ms
    if rules.min_median_watch_ms is not None or rules.min_median_answer_ms is not None:
        fired["too_fast"] = fast
    # Comparisons with NaN are False: a rater without the data for a rule is never dropped by it.
    return {name: s.fillna(False).astype(bool) for name, s in fired.items()}


def screen(votes: pd.DataFrame, rules: ScreeningRules | None = None) -> ScreeningResult:
    """Compute every screening statistic per rater and apply the enabled rules.

    Parameters
    ----------
    votes : DataFrame
        A pairwise or ratings frame, including its repeat and gold rows
        (validated here; raises :class:`analysis.frames.FrameError`).
    rules : ScreeningRules, optional
        Thresholds; defaults to ``ScreeningRules()``.

    Returns
    -------
    ScreeningResult
        ``.raters`` has one row per rater, sorted by rater id; ``kept`` is
        False when at least one enabled rule fired, and ``dropped_by`` lists
        those rules separated by ``;`` (empty when kept).
    """
    return _screen(frames.validate(votes), rules)


def _screen(df: pd.DataFrame, rules: ScreeningRules | None = None) -> ScreeningResult:
    """:func:`screen` of a frame :func:`analysis.frames.validate` returned (not validated again)."""
    rules = rules or ScreeningRules()
    df = df.copy(deep=False)  # new columns below must not reach the caller's frame
    kind = frames.detect_kind(df)
    if "answer_ms" in df.columns:
        df["answer_ms"] = pd.to_numeric(df["answer_ms"], errors="coerce")
    df["rater"] = df["rater"].astype(str)
    df["_value"] = _value(df, kind)
    df["_step"] = _steps(df, rules.slider_step)
    df["_cond_a"] = df["cond_a"].astype(str) if kind == "pairwise" else ""
    main = _main(df)

    table = pd.DataFrame(index=pd.Index(sorted(df["rater"].unique()), name="rater"))
    table["n_votes"] = df.groupby("rater").size()
    table = table.join(_consistency(df, kind)).join(_gold(df, kind, rules.gold_tolerance))
    if kind == "ratings" and len(main):
        counts = bt500_counts(main)
        table = table.join(_residual_kurtosis(main).rename("kurtosis")).join(counts[["bt500_p", "bt500_q"]])
        table["_bt500_reject"] = bt500_rejected(counts, rules.bt500_fraction or 0.05, rules.bt500_balance)
    else:
        table[["kurtosis", "bt500_p", "bt500_q", "_bt500_reject"]] = np.nan
    loo_level = _loo_level(main, kind, rules) if len(main) else ""
    if len(main):
        table = table.join(_loo_corr(main, kind, loo_level, rules.loo_min_items))
    else:
        table[["loo_corr", "n_loo_items"]] = np.nan
    if kind == "pairwise":
        table = table.join(_position(df))
    else:
        table[["left_share", "position_p"]] = np.nan
    table = table.join(_timing(df))
    table["n_repeats"] = table["n_repeats"].fillna(0).astype(int)
    table["n_gold"] = table["n_gold"].fillna(0).astype(int)
    table["n_loo_items"] = table["n_loo_items"].fillna(0).astype(int)

    fired = _decide(table, rules)
    names = [name for name in RULE_NAMES if name in fired]
    hits = np.column_stack([fired[n].reindex(table.index).to_numpy(dtype=bool) for n in names]) if names else (
        np.zeros((len(table), 0), dtype=bool))
    table["dropped_by"] = [";".join(np.asarray(names, dtype=object)[row]) for row in hits]
    table["kept"] = table["dropped_by"] == ""
    for col in ("bt500_p", "bt500_q"):
        table[col] = table[col].astype("Int64")
    raters = table.reset_index()[list(RATER_COLUMNS)]
    return ScreeningResult(raters=raters, rules=rules, kind=kind, loo_level=loo_level)
