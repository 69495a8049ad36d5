"""The screening rules (:class:`ScreeningRules`) and what screening found (:class:`ScreeningResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

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
        """The rows of ``votes`` given by kept raters (all row types).

        Parameters
        ----------
        votes : DataFrame
            A vote frame with a ``rater`` column (normally the one screened).

        Returns
        -------
        DataFrame
            A :class:`analysis.frames.Votes` (numbered from 0) when ``votes`` is one, so it
            is not validated again; otherwise the rows with their original index.
        """
        keep = votes["rater"].astype("string").isin(self.kept).to_numpy(dtype=bool)
        return votes.rows(keep) if isinstance(votes, frames.Votes) else votes[keep]

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
