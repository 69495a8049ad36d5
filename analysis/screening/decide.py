"""Screening a panel: every statistic per rater, which raters can be tested, the rules applied, the
rows an analysis fits (:func:`screen`, :func:`main_votes`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import frames
from analysis.screening.agreement import _bt_agreement
from analysis.screening.checks import (
    _consistency,
    _gold,
    _loo_corr,
    _loo_level,
    _position,
    _residual_kurtosis,
    _steps,
    _timing,
    _value,
    bt500_counts,
    bt500_rejected,
)
from analysis.screening.rules import RATER_COLUMNS, RULE_NAMES, ScreeningResult, ScreeningRules

#: Raters with at least this many votes tell what a typical rater's agreement looks like.
_TYPICAL_MIN_VOTES = 10


#: Raters listed by name in a note before "and N more".
_NOTE_NAMES = 10


def main_votes(votes: pd.DataFrame) -> frames.Votes:
    """The rows an analysis fits: neither consistency repeats nor gold trials.

    Parameters
    ----------
    votes : DataFrame
        A pairwise or ratings frame (validated here unless it is a
        :class:`analysis.frames.Votes`).

    Returns
    -------
    Votes
        Validated rows with null ``repeat_of`` and null ``gold_expected``, numbered from 0.
    """
    df = frames.validate(votes)
    return df.rows(_is_main(df))


def _is_main(df: pd.DataFrame) -> np.ndarray:
    """Which rows are main votes: neither a consistency repeat nor a gold trial."""
    return (df["repeat_of"].isna() & df["gold_expected"].isna()).to_numpy(dtype=bool)


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
        (validated here unless it is a :class:`analysis.frames.Votes`; raises
        :class:`analysis.frames.FrameError`). An extra
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
    votes = frames.validate(votes)
    rules = rules or ScreeningRules()
    kind = votes.kind
    df = _working_frame(votes, kind, rules)
    table, loo_level, min_n, notes = _statistics(df, df[_is_main(df)].reset_index(drop=True), kind, rules)
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


def _working_frame(votes: frames.Votes, kind: str, rules: ScreeningRules) -> pd.DataFrame:
    """A shallow copy of the votes with the columns every statistic reads (``_value``, ``_step``, ...)."""
    df = votes.copy(deep=False)  # a plain frame: the new columns below never reach the caller's votes
    if "answer_ms" in df.columns:
        df["answer_ms"] = pd.to_numeric(df["answer_ms"], errors="coerce")
    df["rater"] = df["rater"].astype(str)
    df["_value"] = _value(df, kind)
    df["_step"] = _steps(df, rules.slider_step)
    df["_cond_a"] = df["cond_a"].astype(str) if kind == "pairwise" else ""
    return df


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
