"""Rater screening: who stays in the panel, and which rule dropped the others.

Every rule of PROTOCOL.md §3 is a field of :class:`ScreeningRules`; setting a
field to ``None`` disables that rule. :func:`screen` computes every statistic
for every rater (whether or not its rule is enabled, so a report can show them)
and marks a rater dropped when at least one enabled rule fires.

The two rules that judge a rater's answers against the rest of the panel
(``loo_corr`` for ratings, ``bt_agreement`` for pairwise votes) are tests, not
cut-offs on a statistic: a rater is dropped only when their answers are *not
significantly better than chance*, and only when they gave enough answers for an
attentive rater to have shown it. An attentive rater who sees things a little
differently from the others (bias, decisiveness, a compressed or stretched use of
the scale) still agrees with them better than a coin and is kept; a random
clicker with enough answers is dropped with probability ``1 − alpha``.

"Enough" is measured on the panel itself. A typical rater's test statistic grows
like ``effect·√n``; the effect is the panel median (of the leave-one-out
correlation, or of ``z/√n`` for pairwise votes), so a minority of clickers does not
move it. A rater is tested only from the ``n`` at which a typical rater passes the
test with probability ``*_power`` (0.999 by default: an attentive rater half as
discriminating as the typical one at that ``n`` still passes most of the time), and
never below ``loo_min_items`` / ``bt_min_votes``. With close conditions or short
sessions that ``n`` is large and few raters are tested: agreement cannot tell a
clicker from an honest rater there, and the notes say so — gold trials, repeats and
timing are the rules for such designs. :attr:`ScreeningResult.agreement_min_n`
holds the ``n`` of each test.

Rule names, as they appear in ``dropped_by``:

``consistency_rank``
    one of the ``drop_least_consistent`` raters with the lowest agreement on
    consistency repeats (the 2021 challenge dropped 3 of 15).
``consistency``
    agreement on repeats below ``min_consistency``.
``gold``
    accuracy on gold trials below ``min_gold_accuracy``; a gold answer is correct
    when ``|answer − expected|`` is within that item's own ``gold_tolerance``
    (the column the web export writes; P.910 toolkit default ±1).
``bt500``
    ITU-R BT.500-14 Annex 1 §2.3.1 kurtosis-based rejection (ratings only).
``loo_corr``
    ratings: Pearson correlation of the rater's scores with the mean of the
    *other* raters on the same items is not significantly positive (one-sided
    t-test of ρ = 0, ``t = r·√((n−2)/(1−r²))`` on ``n − 2`` degrees of freedom,
    Fisher 1915) at level ``loo_alpha``.
``bt_agreement``
    pairwise: the rater's answers do not agree with the Bradley–Terry fit of the
    *other* raters (Bradley & Terry 1952; ties as half wins) significantly better
    than chance at level ``bt_alpha``. The test is a sign-flip (randomisation) test in the sense of Fisher
    (1935): under "the rater's answer does not depend on which clip is better"
    the sign of each answer is a fair coin whatever its strength, so
    ``U = Σ pref_i · d_i`` (``d_i`` the others' fitted difference of the pair)
    has mean 0 and variance ``Σ pref_i² d_i²``; ``U`` is the score statistic of
    a per-rater discrimination factor at 0 (Rao 1948), and the p-value is
    ``1 − Φ(U / √Σ pref_i² d_i²)``.
``position_bias``
    chose the left clip significantly and substantially more (or less) often
    than half the time (pairwise only).
``too_fast``
    median time per trial below ``min_median_watch_ms`` (or below
    ``min_median_answer_ms`` when the frame has an ``answer_ms`` column).

Leave-one-rater-out fit (``bt_agreement``): with at most
:data:`EXACT_LOO_MAX_RATERS` raters (and :data:`EXACT_LOO_MAX_CONDITIONS`
conditions) the fit without each rater is computed exactly, by Newton's method
started at the pooled fit. Above, one rater's influence on the pooled fit is
small and the fit without them is its one-step Newton approximation
``ŝ − H⁻¹ g_r`` (``g_r`` the rater's score vector at the pooled fit, ``H`` the
pooled information; Pregibon 1981's one-step case-deletion estimate), all raters
in one solve. The fit carries a weak ridge (:data:`BT_RIDGE`, a N(0, 10) prior on
log-strengths) so that a condition that never loses still has a finite score.

No rule silently removes most of a panel: a rule that would drop more than
``max_drop_share`` of the raters is not applied and says so in
:attr:`ScreeningResult.notes` (the threshold or the study design is then in
doubt, not the raters). Raters an agreement test cannot judge (too few items or
votes) get NaN for its p-value, are never dropped by it, and are listed in the notes.

Statistics use the rows they are defined on: consistency uses repeat rows and
the first showings they point at, gold accuracy uses gold rows, BT.500, the
leave-one-out correlation and the agreement with the Bradley–Terry fit use
:func:`main_votes` (gold clips would distort the panel's distribution), position
bias and timing use every row.

References: R. A. Bradley, M. E. Terry, Biometrika 39 (1952) 324–345;
R. A. Fisher, Biometrika 10 (1915) 507–521 and *The Design of Experiments* (1935);
C. R. Rao, Proc. Camb. Phil. Soc. 44 (1948) 50–57; D. Pregibon, Ann. Statist. 9
(1981) 705–724; ITU-R BT.500-14 (2019) Annex 1 §2.3.1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg, sparse, stats
from scipy.sparse import linalg as splinalg
from scipy.special import expit, log_expit

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
    "loo_p",
    "n_loo_items",
    "bt_agreement",
    "bt_p",
    "n_bt_votes",
    "left_share",
    "position_p",
    "median_watch_ms",
    "median_answer_ms",
    "kept",
    "dropped_by",
)

RULE_NAMES = (
    "consistency_rank", "consistency", "gold", "bt500", "loo_corr", "bt_agreement", "position_bias", "too_fast",
)

#: Up to this many raters the leave-one-rater-out Bradley–Terry fits are exact refits ...
EXACT_LOO_MAX_RATERS = 50
#: ... provided there are at most this many conditions (a dense refit per rater stays cheap).
EXACT_LOO_MAX_CONDITIONS = 200
#: Ridge on the log-strengths of the reference fit: a N(0, 1/BT_RIDGE) prior, negligible
#: next to the information of a few votes per condition but finite when one never loses.
BT_RIDGE = 0.1
#: Conditions above which the Newton systems are solved as sparse matrices.
_SPARSE_ABOVE = 500
#: Raters with at least this many votes tell what a typical rater's agreement looks like.
_TYPICAL_MIN_VOTES = 10
#: Raters listed by name in a note before "and N more".
_NOTE_NAMES = 10


@dataclass(frozen=True)
class ScreeningRules:
    """Thresholds of the screening rules; ``None`` disables a rule.

    The defaults are what a real study would use: an attentive rater is rarely
    dropped by chance (see ``benchmarks/screening_rates.py`` for simulated panels
    with realistic differences in bias and decisiveness), while a random clicker
    with enough answers to be told apart is dropped 95% of the time.

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
        Fallback for gold rows without their own tolerance. A gold answer is
        correct when ``|answer − expected|`` is at most the row's
        ``gold_tolerance`` column (in answer units, as the study manifest sets it
        per item and the web export writes it). Only where the frame has no such
        column, or the cell is empty: ratings answers are correct within this many
        steps (P.910 toolkit: ±1) and pairwise answers when the sign of ``pref``
        matches the sign of the expected answer.
    bt500_fraction, bt500_balance : float or None, float
        BT.500 rejects a rater when ``(P+Q)/N > bt500_fraction`` and
        ``|P-Q|/(P+Q) < bt500_balance`` (0.05 and 0.3 in the Recommendation).
        Off by default (``None``): on simulated honest lab panels it drops 2.2–2.5% of
        raters (above the 2% an honest rater may be dropped by chance) and on the VQEG-HD3
        panel one subject, while ``loo_corr`` catches the clickers it would catch. Set
        ``bt500_fraction=0.05`` to apply the Recommendation's procedure.
    loo_alpha : float or None
        Ratings: drop raters whose correlation with the mean of the other raters
        (per item) is not significantly positive at this level (one-sided
        t-test). A random clicker is dropped with probability ``1 − loo_alpha``.
    loo_min_items : int
        Raters sharing fewer items with other raters are never tested by
        ``loo_corr`` (``loo_p`` NaN), whatever ``loo_power`` allows.
    loo_power : float
        Raters are tested from the number of items at which a typical rater of
        the panel (its median correlation) passes the ``loo_corr`` test with this
        probability (Fisher's z approximation); fewer items: ``loo_p`` NaN.
    loo_level : {"auto", "stimulus", "condition"}
        Items of the leave-one-out correlation: ``"stimulus"`` per (content,
        cond), ``"condition"`` per cond pooled over contents, ``"auto"``:
        ``"stimulus"`` when the median stimulus was rated by at least
        ``loo_auto_min_raters`` raters, else ``"condition"``.
    loo_auto_min_raters : int
        See ``loo_level``.
    bt_alpha : float or None
        Pairwise: drop raters whose answers do not agree with the Bradley–Terry
        fit of the other raters significantly better than chance at this level
        (one-sided sign-flip test). A random clicker is dropped with probability
        ``1 − bt_alpha``.
    bt_min_votes : int
        Raters with fewer main votes (any answer, on pairs the others' fit
        separates) are never tested by ``bt_agreement`` (``bt_p`` NaN).
    bt_power : float
        Raters are tested from the number of votes at which a typical rater of
        the panel (its median ``z/√n``) passes the ``bt_agreement`` test with this
        probability; fewer votes: ``bt_p`` NaN.
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
    max_drop_share : float or None
        A rule that would drop more than this share of the raters is not
        applied: everyone it would have dropped is kept by it and
        :attr:`ScreeningResult.notes` says so. ``None`` lets every rule drop
        any number of raters.
    """

    drop_least_consistent: int | None = None
    min_consistency: float | None = None
    slider_step: float = 10.0
    min_gold_accuracy: float | None = 0.8
    gold_tolerance: float = 1.0
    bt500_fraction: float | None = None
    bt500_balance: float = 0.3
    loo_alpha: float | None = 0.05
    loo_min_items: int = 20
    loo_power: float = 0.999
    loo_level: Literal["auto", "stimulus", "condition"] = "auto"
    loo_auto_min_raters: int = 5
    bt_alpha: float | None = 0.05
    bt_min_votes: int = 30
    bt_power: float = 0.999
    max_position_p: float | None = 0.001
    min_position_effect: float = 0.15
    min_median_watch_ms: float | None = 1000.0
    min_median_answer_ms: float | None = 500.0
    max_drop_share: float | None = 0.5

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
            loo_alpha=None,
            bt_alpha=None,
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
        Items the leave-one-out correlation used ("" for pairwise frames and
        when there were no votes).
    notes : tuple of str
        What a reader of the verdicts must know: a rule not applied because it
        would have dropped more than ``max_drop_share`` of the panel, raters a
        rule could not test, screening that removed most of the panel.
    agreement_min_n : dict of str to float
        For each agreement rule computed (``"loo_corr"``, ``"bt_agreement"``): the
        items (ratings) or votes (pairwise) from which this panel's raters are
        tested (``inf``: nobody can be; see :class:`ScreeningRules`' ``*_power``).
    """

    raters: pd.DataFrame
    rules: ScreeningRules
    kind: str
    loo_level: str = ""
    notes: tuple[str, ...] = ()
    agreement_min_n: dict[str, float] = field(default_factory=dict)

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
            A copy of ``raters``; ``attrs`` holds ``rules`` (as a dict), ``kind``,
            ``loo_level``, ``notes`` (a list) and ``agreement_min_n``.
        """
        out = self.raters.copy()
        out.attrs["rules"] = asdict(self.rules)
        out.attrs["kind"] = self.kind
        out.attrs["loo_level"] = self.loo_level
        out.attrs["notes"] = list(self.notes)
        out.attrs["agreement_min_n"] = dict(self.agreement_min_n)
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


# --------------------------------------------------------------------------- agreement with the others' BT fit


@dataclass(frozen=True)
class _Votes:
    """Decided and undecided pairwise main votes as condition and rater codes.

    ``y`` is the outcome for ``a`` (1 win, 0.5 "no preference", 0 loss), ``pref`` the
    answer towards ``a`` (graded), ``r`` the rater code.
    """

    a: np.ndarray
    b: np.ndarray
    y: np.ndarray
    pref: np.ndarray
    r: np.ndarray
    n_conditions: int
    raters: pd.Index


def _pairwise_votes(main: pd.DataFrame) -> _Votes:
    """Codes of validated pairwise main votes (raters sorted, as in the screening table)."""
    n = len(main)
    codes, conds = pd.factorize(pd.concat([main["cond_a"], main["cond_b"]], ignore_index=True))
    pref = main["pref"].to_numpy(dtype=float)
    r, raters = pd.factorize(main["rater"], sort=True)
    y = np.where(pref > 0, 1.0, np.where(pref < 0, 0.0, 0.5))
    return _Votes(codes[:n].astype(np.int64), codes[n:].astype(np.int64), y, pref, r.astype(np.int64),
                  len(conds), pd.Index(raters, name="rater"))


def _pair_counts(v: _Votes, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Votes aggregated per ordered pair: ``(i, j, wins of i, votes)``, ties as half wins."""
    a, b, y = (v.a, v.b, v.y) if rows is None else (v.a[rows], v.b[rows], v.y[rows])
    key, inv = np.unique(a * v.n_conditions + b, return_inverse=True)
    wins, total = np.bincount(inv, y, len(key)), np.bincount(inv, minlength=len(key)).astype(float)
    return key // v.n_conditions, key % v.n_conditions, wins, total


def _information(i: np.ndarray, j: np.ndarray, w: np.ndarray, n: int) -> np.ndarray | sparse.csc_array:
    """``ridge·I + Σ w (e_i − e_j)(e_i − e_j)ᵀ``: minus the Hessian of the penalised log-likelihood."""
    rows = np.concatenate([i, j, i, j, np.arange(n)])
    cols = np.concatenate([i, j, j, i, np.arange(n)])
    vals = np.concatenate([w, w, -w, -w, np.full(n, BT_RIDGE)])
    if n > _SPARSE_ABOVE:
        return sparse.coo_array((vals, (rows, cols)), shape=(n, n)).tocsc()
    return np.bincount(rows * n + cols, vals, n * n).reshape(n, n)


def _solve(h: np.ndarray | sparse.csc_array, rhs: np.ndarray) -> np.ndarray:
    """``h⁻¹ rhs`` for the positive-definite information (dense Cholesky or sparse LU)."""
    if sparse.issparse(h):
        return splinalg.splu(h).solve(rhs)
    return linalg.cho_solve(linalg.cho_factor(h), rhs)


def _bt_fit(i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, n: int,
            start: np.ndarray | None = None) -> np.ndarray:
    """Ridge-penalised Bradley–Terry log-strengths by Newton's method with step halving."""

    def objective(s: np.ndarray) -> float:
        d = s[i] - s[j]
        return float(wins @ log_expit(d) + (total - wins) @ log_expit(-d) - BT_RIDGE / 2 * s @ s)

    s = np.zeros(n) if start is None else start.copy()
    f = objective(s)
    for _ in range(100):
        p = expit(s[i] - s[j])
        e = wins - total * p
        grad = np.bincount(i, e, n) - np.bincount(j, e, n) - BT_RIDGE * s
        step = _solve(_information(i, j, total * p * (1 - p), n), grad)
        t = 1.0
        while t > 1e-6 and objective(s + t * step) < f - 1e-12:
            t /= 2  # the penalised log-likelihood is concave: a short enough step always improves it
        s = s + t * step
        f = objective(s)
        if np.max(np.abs(t * step), initial=0.0) < 1e-9:
            break
    return s


def _loo_scores(v: _Votes) -> np.ndarray:
    """``(n_raters, n_conditions)``: each rater's reference, the fit of everyone else.

    Exact refits (warm-started at the pooled fit) for small panels; otherwise the
    one-step Newton approximation ``ŝ − H⁻¹ g_r`` for all raters in one solve.
    """
    n, n_raters = v.n_conditions, len(v.raters)
    i, j, wins, total = _pair_counts(v)
    pooled = _bt_fit(i, j, wins, total, n)
    if n_raters <= EXACT_LOO_MAX_RATERS and n <= EXACT_LOO_MAX_CONDITIONS:
        return np.vstack([_bt_fit(*_pair_counts(v, v.r != r), n, start=pooled) for r in range(n_raters)])
    p = expit(pooled[i] - pooled[j])
    e = v.y - expit(pooled[v.a] - pooled[v.b])
    # Each rater's score vector at the pooled fit, one row per rater.
    g = (np.bincount(v.r * n + v.a, e, n_raters * n) - np.bincount(v.r * n + v.b, e, n_raters * n))
    step = _solve(_information(i, j, total * p * (1 - p), n), g.reshape(n_raters, n).T)
    return pooled[None, :] - step.T


def _bt_agreement(main: pd.DataFrame) -> pd.DataFrame:
    """Agreement of each rater with the Bradley–Terry fit of the other raters, and its test.

    ``n_bt_votes``: main votes (any answer) on pairs the others' fit separates (``d ≠ 0``).
    ``bt_agreement``: share of the decided ones whose side matches the sign of ``d``.
    ``bt_p``: one-sided sign-flip p-value of ``U = Σ pref·d`` (see the module docstring);
    1 for a rater who never expressed a preference (``U`` is then 0 under every sign flip).
    ``_bt_z``: the standardised ``U``, used to find what a typical rater of the panel shows.
    """
    v = _pairwise_votes(main)
    s = _loo_scores(v)
    d = s[v.r, v.a] - s[v.r, v.b]
    counted, decided = d != 0, (v.pref != 0) & (d != 0)
    k = len(v.raters)
    n, n_decided = np.bincount(v.r, counted, k), np.bincount(v.r, decided, k)
    agree = np.bincount(v.r, decided & (np.sign(v.pref) == np.sign(d)), k)
    u, var = np.bincount(v.r, v.pref * d, k), np.bincount(v.r, (v.pref * d) ** 2, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, u / np.sqrt(var), 0.0)
        p = np.where(n == 0, np.nan, np.where(var > 0, stats.norm.sf(z), 1.0))
        share = agree / n_decided
    return pd.DataFrame({"bt_agreement": share, "bt_p": p, "n_bt_votes": n.astype(int), "_bt_z": z},
                        index=v.raters)


# --------------------------------------------------------------------------- enough data to test


def _needed(effect: float, alpha: float, power: float) -> float:
    """Sample size at which a one-sided z-test at ``alpha`` detects ``effect·√n`` with ``power``."""
    if not effect > 0:
        return np.inf
    return float(((stats.norm.isf(alpha) + stats.norm.isf(1.0 - power)) / effect) ** 2)


def _gate(table: pd.DataFrame, stat: str, n_col: str, need: float) -> pd.Index:
    """Set ``stat`` to NaN for raters with fewer than ``need`` items or votes; return them."""
    short = table[n_col].fillna(0).to_numpy() < need
    table.loc[short, stat] = np.nan
    return table.index[short]


def _gate_loo(table: pd.DataFrame, rules: ScreeningRules) -> tuple[float, str | None]:
    """Leave ``loo_p`` only to raters with enough items for a typical rater to pass the test.

    A typical rater of this panel correlates with the others like the panel's median
    rater; by Fisher's z (``atanh r ≈ N(atanh ρ, 1/(n−3))``) they pass a one-sided test
    at ``loo_alpha`` with probability ``loo_power`` from ``n = (z_α + z_β)²/atanh(ρ)² + 3``
    items on. Below that (or below ``loo_min_items``) an honest rater could fail by
    chance too often: not tested.
    """
    typical = float(table.loc[table["n_loo_items"] >= 3, "loo_corr"].median())
    alpha = rules.loo_alpha or 0.05
    need = max(float(rules.loo_min_items), _needed(np.arctanh(min(typical, 0.999)), alpha, rules.loo_power) + 3.0)
    who = _gate(table, "loo_p", "n_loo_items", need)
    if rules.loo_alpha is None or not len(who) or not table["n_loo_items"].gt(0).any():
        return need, None
    if not np.isfinite(need):
        return need, ("loo_corr: the raters' scores do not correlate with the other raters' means (median "
                      f"correlation {typical:.2f}), so agreement cannot tell anyone from a random clicker; nobody "
                      "was tested (loo_p is NaN)")
    return need, (f"loo_corr: {len(who)} rater(s) share fewer than {_count(need)} items with the other raters, too "
                  f"few for a typical rater of this panel (median correlation {typical:.2f}) to pass the test with "
                  f"probability {rules.loo_power:g}; not tested and not dropped by it (loo_p is NaN): {_names(who)}")


def _gate_bt(table: pd.DataFrame, rules: ScreeningRules) -> tuple[float, str | None]:
    """Leave ``bt_p`` only to raters with enough votes for a typical rater to pass the test.

    ``z`` of a rater who answers like the panel grows like ``e·√n``; ``e`` is estimated
    by the panel's median of ``z/√n`` (robust to a minority of clickers). Raters with
    fewer votes than :func:`_needed` (or than ``bt_min_votes``) are not tested.
    """
    n = table["n_bt_votes"].fillna(0).to_numpy(dtype=float)
    rated = n >= _TYPICAL_MIN_VOTES
    effect = float(np.median(table["_bt_z"].to_numpy(float)[rated] / np.sqrt(n[rated]))) if rated.any() else 0.0
    need = max(float(rules.bt_min_votes), _needed(effect, rules.bt_alpha or 0.05, rules.bt_power))
    who = _gate(table, "bt_p", "n_bt_votes", need)
    if rules.bt_alpha is None or not len(who) or not (n > 0).any():
        return need, None
    if not np.isfinite(need):
        return need, ("bt_agreement: the panel's answers agree with each other's Bradley–Terry fit no better than "
                      "chance, so agreement cannot tell anyone from a random clicker; nobody was tested (bt_p is NaN)")
    return need, (f"bt_agreement: {len(who)} rater(s) gave fewer than {_count(need)} votes, too few for a typical "
                  f"rater of this panel to pass the test with probability {rules.bt_power:g}; not tested and not "
                  f"dropped by it (bt_p is NaN): {_names(who)}")


def _count(need: float) -> str:
    """A finite item or vote count as a whole number (raters need at least this many)."""
    return str(int(np.ceil(need)))


# --------------------------------------------------------------------------- the rules


def _not_significant(p: pd.Series, alpha: float) -> pd.Series:
    """True where a test of "better than chance" did not reach ``alpha`` (NaN: untested, False)."""
    return (p >= alpha) & p.notna()


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
    if rules.loo_alpha is not None:
        fired["loo_corr"] = _not_significant(table["loo_p"], rules.loo_alpha)
    if rules.bt_alpha is not None:
        fired["bt_agreement"] = _not_significant(table["bt_p"], rules.bt_alpha)
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


def _names(raters: pd.Index) -> str:
    shown = ", ".join(map(str, raters[:_NOTE_NAMES]))
    return shown + (f" and {len(raters) - _NOTE_NAMES} more" if len(raters) > _NOTE_NAMES else "")


def _guard(fired: dict[str, pd.Series], rules: ScreeningRules) -> list[str]:
    """Suspend (in place) every rule that would drop more than ``max_drop_share`` of the panel."""
    notes = []
    for name, hits in fired.items():
        n, total = int(hits.sum()), len(hits)
        if rules.max_drop_share is None or n <= rules.max_drop_share * total:
            continue
        fired[name] = pd.Series(False, index=hits.index)
        notes.append(f"rule '{name}' would have dropped {n} of {total} raters (more than max_drop_share = "
                     f"{rules.max_drop_share:g}): not applied, they are kept. When most of a panel fails one rule "
                     "its threshold or the study design is in doubt, not the raters; look at the votes before "
                     "dropping anyone.")
    return notes


def screen(votes: pd.DataFrame, rules: ScreeningRules | None = None) -> ScreeningResult:
    """Compute every screening statistic per rater and apply the enabled rules.

    Parameters
    ----------
    votes : DataFrame
        A pairwise or ratings frame, including its repeat and gold rows
        (validated here; raises :class:`analysis.frames.FrameError`). An extra
        ``gold_tolerance`` column gives each gold row its own tolerance.
    rules : ScreeningRules, optional
        Thresholds; defaults to ``ScreeningRules()``.

    Returns
    -------
    ScreeningResult
        ``.raters`` has one row per rater, sorted by rater id; ``kept`` is
        False when at least one enabled rule fired, and ``dropped_by`` lists
        those rules separated by ``;`` (empty when kept). ``.notes`` says
        which rules were suspended and which raters could not be tested.
    """
    return _screen(frames.validate(votes), rules)


def _statistics(df: pd.DataFrame, main: pd.DataFrame, kind: str,
                rules: ScreeningRules) -> tuple[pd.DataFrame, str, dict[str, float], list[str]]:
    """Per-rater statistics (one row per rater, sorted), the leave-one-out item level, from how many
    items or votes each agreement test judges a rater, and notes."""
    table = pd.DataFrame(index=pd.Index(sorted(df["rater"].unique()), name="rater"))
    table["n_votes"] = df.groupby("rater").size()
    table = table.join(_consistency(df, kind)).join(_gold(df, kind, rules.gold_tolerance))
    loo_level, notes, min_n = "", [], {}
    if kind == "ratings" and len(main):
        counts = bt500_counts(main)
        table = table.join(_residual_kurtosis(main).rename("kurtosis")).join(counts[["bt500_p", "bt500_q"]])
        table["_bt500_reject"] = bt500_rejected(counts, rules.bt500_fraction or 0.05, rules.bt500_balance)
        loo_level = _loo_level(main, rules)
        table = table.join(_loo_corr(main, loo_level))
        min_n["loo_corr"], note = _gate_loo(table, rules)
        notes.append(note)
    else:
        table[["kurtosis", "bt500_p", "bt500_q", "_bt500_reject", "loo_corr", "loo_p", "n_loo_items"]] = np.nan
    if kind == "pairwise" and len(main):
        table = table.join(_bt_agreement(main))
        min_n["bt_agreement"], note = _gate_bt(table, rules)
        notes.append(note)
    else:
        table[["bt_agreement", "bt_p", "n_bt_votes"]] = np.nan
    if kind == "pairwise":
        table = table.join(_position(df))
    else:
        table[["left_share", "position_p"]] = np.nan
    table = table.join(_timing(df))
    for col in ("n_repeats", "n_gold", "n_loo_items", "n_bt_votes"):
        table[col] = table[col].fillna(0).astype(int)
    return table, loo_level, min_n, [note for note in notes if note]


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
    table, loo_level, min_n, notes = _statistics(df, _main(df), kind, rules)

    fired = _decide(table, rules)
    notes = _guard(fired, rules) + notes
    names = [name for name in RULE_NAMES if name in fired]
    hits = np.column_stack([fired[n].reindex(table.index).to_numpy(dtype=bool) for n in names]) if names else (
        np.zeros((len(table), 0), dtype=bool))
    table["dropped_by"] = [";".join(np.asarray(names, dtype=object)[row]) for row in hits]
    table["kept"] = table["dropped_by"] == ""
    n_dropped = int((~table["kept"]).sum())
    if rules.max_drop_share is not None and n_dropped > rules.max_drop_share * len(table):
        notes.append(f"the rules together dropped {n_dropped} of {len(table)} raters (each rule alone at most "
                     f"max_drop_share = {rules.max_drop_share:g}); check dropped_by before trusting the ranking")
    for col in ("bt500_p", "bt500_q"):
        table[col] = table[col].astype("Int64")
    raters = table.reset_index()[list(RATER_COLUMNS)]
    return ScreeningResult(raters=raters, rules=rules, kind=kind, loo_level=loo_level, notes=tuple(notes),
                           agreement_min_n=min_n)
