"""Screen, fit, rank: :func:`analyze`, the whole analysis of one study."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

import analysis
from analysis import aggregate, frames, methods, mos, normalize, ranking, screening
from analysis import bradley_terry as bt
from analysis.report.files import is_pair_table
from analysis.report.result import CI_CHOICES, AnalysisResult
from analysis.report.tiebreaker import with_objective

#: Names that mark the hidden reference of an ACR-HR study when no ``role`` column says so.
_REFERENCE_NAMES = ("ref", "reference", "source", "src")


@dataclass(frozen=True, eq=False)
class AnalysisOptions:
    """How :func:`analyze` screens, fits and ranks (every field has the documented default).

    Parameters are checked when the options are made, so a bad value fails where it was written.

    Attributes
    ----------
    ties : {"davidson", "rao-kupper", "split"}
        Bradley–Terry tie model (pairwise).
    bootstrap : int
        Rater-bootstrap rounds, used with ``ci="bootstrap"`` (at least 2).
    seed : int or None
        Seed of every bootstrap.
    screening_rules : ScreeningRules, optional
        Default ``ScreeningRules()``; ``ScreeningRules.none()`` keeps everyone.
    tiebreak : TieBreaker, optional
        Orders conditions inside a tie group (see :func:`analysis.ranking.rank`).
    reasons : tuple of str, optional
        Decision factors to fit separately (default: every factor in the votes); any
        iterable is accepted and kept as a tuple.
    graded : bool
        A vote of strength ``|pref|`` counts as that many wins (pairwise).
    alpha : float
        1 − confidence level of the intervals and family-wise level of the tests.
    normalize_scores : {None, "minmax", "zscore", "zscore-rescaled"}
        Per-rater normalisation before the MOS (ratings).
    reference : str, optional
        Hidden-reference condition of an ACR-HR study (else a ``role`` column or a
        condition named ``REF``/``reference``/``source``).
    subject_model : bool
        Also fit the subject model (rater bias and inconsistency; ratings).
    pair_table : dict, optional
        Options of :func:`analysis.aggregate.from_pair_table` (``method``,
        ``tie_share``, ``strength``) for a pair table.
    published : DataFrame, optional
        ``condition, score`` on our scale, drawn next to our scores in the report.
    ci : {"cluster", "bootstrap", "model"}
        Interval method of every interval and test (see :mod:`analysis.report`).

    Raises
    ------
    ValueError
        An unknown ``ci`` or ``ties``, fewer than 2 bootstrap rounds with
        ``ci="bootstrap"``, or ``alpha`` outside (0, 1).
    """

    ties: bt.TieModel = "davidson"
    bootstrap: int = 1000
    seed: int | None = 0
    screening_rules: screening.ScreeningRules | None = None
    tiebreak: ranking.TieBreaker | None = None
    reasons: tuple[str, ...] | None = None
    graded: bool = False
    alpha: float = 0.05
    normalize_scores: mos.Normalisation = None
    reference: str | None = None
    subject_model: bool = False
    pair_table: Mapping[str, Any] | None = None
    published: pd.DataFrame | None = None
    ci: str = "cluster"

    def __post_init__(self) -> None:
        if self.ci not in CI_CHOICES:
            raise ValueError(f"ci must be one of {', '.join(CI_CHOICES)}, got {self.ci!r}")
        if self.ci == "bootstrap" and self.bootstrap < 2:
            raise ValueError("the rater bootstrap needs at least 2 rounds")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.ties not in bt.TIE_MODELS:
            raise ValueError(f"ties must be one of {', '.join(bt.TIE_MODELS)}, got {self.ties!r}")
        if self.reasons is not None and not isinstance(self.reasons, tuple):
            # A generator would be used up by the first analysis; frozen, so set through object.
            object.__setattr__(self, "reasons", tuple(self.reasons))


def analyze(votes: pd.DataFrame, options: AnalysisOptions | None = None) -> AnalysisResult:
    """Screen, fit, rank: the whole analysis of one study.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes, ratings, or a pair table (detected from the columns; see
        :mod:`analysis.report`).
    options : AnalysisOptions, optional
        Tie model, interval method, screening rules, tie-breaker, ... (default:
        ``AnalysisOptions()``).

    Returns
    -------
    AnalysisResult

    Raises
    ------
    frames.FrameError
        A malformed frame (every problem listed).
    bradley_terry.ComparisonGraphError
        The comparisons do not determine finite, comparable scores.
    ValueError
        Screening left nobody (bad parameters fail in :class:`AnalysisOptions`).
    """
    opts = options if options is not None else AnalysisOptions()
    if not isinstance(votes, pd.DataFrame):
        raise frames.FrameError([f"expected a pandas DataFrame, got {type(votes).__name__}"])
    tiebreak = opts.tiebreak
    common = {"version": analysis.__version__, "alpha": opts.alpha, "ci": opts.ci,
              "bootstrap": opts.bootstrap if opts.ci == "bootstrap" else 0, "seed": opts.seed,
              "tiebreak": None if tiebreak is None else ranking.tiebreak_id(tiebreak)}
    if is_pair_table(votes):
        return with_objective(_analyze_pair_table(votes, opts, common), tiebreak, None)
    df = frames.validate(votes)
    kind = frames.detect_kind(df)
    rules = opts.screening_rules if opts.screening_rules is not None else screening.ScreeningRules()
    # Validated once here; everything below takes the validated frame as it is.
    sr = screening.screen(df, rules)
    kept_rows = sr.kept_votes(df)
    if len(kept_rows) == 0:
        raise ValueError(f"screening dropped every rater ({len(sr.raters)}); see raters.csv or relax the rules")
    main = screening.main_votes(kept_rows)
    if len(main) == 0:
        raise ValueError("no main votes left after screening (only repeats and gold trials)")
    counts = _row_counts(df, sr, main)
    common |= {"kind": kind, "source": "votes", "screening": asdict(rules), "loo_level": sr.loo_level,
               "screening.agreement_min_n": dict(sr.agreement_min_n)}
    if kind == "pairwise":
        res = _analyze_pairwise(main, sr, counts, opts, common)
        return with_objective(_with_screening_notes(res, sr), tiebreak, main)
    res = _analyze_ratings(main, sr, counts, opts, common)
    return with_objective(_with_screening_notes(res, sr), tiebreak, None)


def _with_screening_notes(res: AnalysisResult, sr: screening.ScreeningResult) -> AnalysisResult:
    """The screening's notes (rules held back, raters too few votes to judge) first in ``notes``."""
    return replace(res, notes=[f"screening: {n}" for n in sr.notes] + list(res.notes)) if sr.notes else res


def _row_counts(df: pd.DataFrame, sr: screening.ScreeningResult, main: pd.DataFrame) -> dict[str, int]:
    repeat = df["repeat_of"].notna().to_numpy(dtype=bool)
    gold = df["gold_expected"].notna().to_numpy(dtype=bool)
    return {
        "rows": len(df),
        "main_rows": int((~repeat & ~gold).sum()),
        "repeat_rows": int(repeat.sum()),
        "gold_rows": int(gold.sum()),
        "raters": len(sr.raters),
        "raters_kept": len(sr.kept),
        "raters_dropped": len(sr.dropped),
        "rows_of_dropped_raters": int((~df["rater"].astype(str).isin(sr.kept)).sum()),
        "votes_fitted": len(main),
        "conditions": len(frames.conditions(main)),
        "contents": int(main["content"].nunique()),
    }


#: Below this many raters a rater bootstrap sees too few distinct panels to give an interval
#: (3 raters resample into 10 panels), so it is refused and the clustered interval used.
MIN_BOOTSTRAP_RATERS = 5


def _method(main: pd.DataFrame, opts: AnalysisOptions, model: str, notes: list[str]) -> tuple[str, int]:
    """The interval method to fit with (``model`` names the model-based one) and its rounds."""
    method, rounds = opts.ci, opts.bootstrap
    if method == "model":
        return model, 0
    n_raters = int(main["rater"].nunique())
    if method == "bootstrap" and n_raters < MIN_BOOTSTRAP_RATERS:
        notes.append(f"only {n_raters} rater(s) left after screening: the rater bootstrap was refused and the "
                     "intervals are rater-clustered instead")
        return "cluster", 0
    return method, rounds if method == "bootstrap" else 0


def _analyze_pairwise(main: pd.DataFrame, sr: screening.ScreeningResult, counts: dict[str, int],
                      opts: AnalysisOptions, common: dict[str, Any]) -> AnalysisResult:
    ties, graded, alpha, reasons = opts.ties, opts.graded, opts.alpha, opts.reasons
    notes: list[str] = []
    method, rounds = _method(main, opts, "hessian", notes)
    # ``main`` holds main votes already: count them once, for the fit and the win-rate matrix.
    votes = bt.count_votes(main, graded, main_only=False)
    fit_kw = {"ties": ties, "graded": graded, "ci": method, "n_boot": max(rounds, 2), "seed": opts.seed, "alpha": alpha}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a refused bootstrap is said in the notes instead
        fit = bt.fit(votes, **fit_kw)
    notes.extend(fit.params.get("notes", []))
    if fit.params.get("boot_failed") and fit.boot is not None:
        notes.append(f"{fit.params['boot_failed']} of {rounds} bootstrap rounds had no finite scores or did not "
                     "converge and were left out of the bootstrap intervals")
    rk = ranking.rank(fit, alpha=alpha, tiebreak=opts.tiebreak)
    wanted = bt.present_reasons(main) if reasons is None else [frames.normalize_id(str(r)) for r in reasons]
    # A factor named by too few raters to determine every score is left out (and said so);
    # the other factors and the overall fit stand.
    failed: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason_fits = bt.fit_by_reason(main, wanted, on_error="skip", failures=failed, main_only=False, **fit_kw)
    notes.extend(f"factor {reason!r} not fitted: {msg}" for reason, msg in failed.items())
    notes.extend(f"factor {reason!r}: {note}" for reason, f in reason_fits.items() for note in f.params["notes"])
    params = {**common, **{f"bt.{k}": v for k, v in fit.settings().items() if k != "notes"}, "ties": ties,
              "graded": graded, "rank_by": fit.ci, "reasons": wanted,
              **{f"ranking.{k}": v for k, v in rk.params.items()}}
    return AnalysisResult(
        kind="pairwise", source="votes", scores=fit.to_frame(), ranking=rk, raters=sr.raters.copy(),
        by_reason={r: f.to_frame() for r, f in reason_fits.items()}, counts=counts,
        params=params, notes=notes, fit=fit, reason_fits=reason_fits, screening=sr,
        pair_counts=bt.count_votes(main, graded=False, main_only=False).pairs if graded else votes.pairs,
        published=opts.published,
    )


def _reference_for(main: pd.DataFrame, reference: str | None) -> str | None:
    if reference is not None or "role" in main.columns:
        return reference
    names = {str(c) for c in main["cond"].unique()}
    found = sorted(c for c in names if c.lower() in _REFERENCE_NAMES)
    return found[0] if len(found) == 1 else None


def _analyze_ratings(main: pd.DataFrame, sr: screening.ScreeningResult, counts: dict[str, int],
                     opts: AnalysisOptions, common: dict[str, Any]) -> AnalysisResult:
    alpha, normalise, subject_model = opts.alpha, opts.normalize_scores, opts.subject_model
    level = 1 - alpha
    notes: list[str] = []
    method, rounds = _method(main, opts, "t", notes)
    seed = 0 if opts.seed is None else opts.seed
    boot_kw = {"n_boot": max(rounds, 2), "seed": seed, "level": level}
    m = mos.mos(main, ("cond",), method, normalize=normalise, keep_cov=True, **boot_kw)
    m_content = mos.mos(main, ("content", "cond"), method, normalize=normalise, keep_cov=False, **boot_kw)
    measure, result, extra = "mos", m, dict(m.params)
    used = sorted(map(str, main["method"].unique()))
    if len(used) == 1 and methods.METHODS[used[0]].reference == "hidden":  # ACR-HR: DMOS
        ref = _reference_for(main, opts.reference)
        try:
            d = mos.dmos(main, ref, ("cond",), method, keep_cov=True, **boot_kw)
            measure, result, extra = "dmos", d, dict(d.params)
            if d.params.get("n_unpaired"):
                notes.append(f"DMOS: {d.params['n_unpaired']} scores had no same-rater reference score and "
                             "were left out")
        except ValueError as exc:
            notes.append(f"DMOS not computed ({exc}); conditions ranked by MOS")
    notes.extend(result.params.get("notes", []))
    table = result.table
    scores = pd.DataFrame({
        "condition": table["cond"].astype(str).to_numpy(), "score": table["mos"].to_numpy(dtype=float),
        "se": table["se"].to_numpy(dtype=float),
        "ci_low": table["ci_low"].to_numpy(dtype=float), "ci_high": table["ci_high"].to_numpy(dtype=float),
        "ci_method": method,
        "n_votes": table["n"].to_numpy(dtype=np.int64), "n_raters": table["n_raters"].to_numpy(dtype=np.int64),
        "sd": table["sd"].to_numpy(dtype=float),
    })
    # Shared raters correlate the condition means: differences are tested with the covariance of
    # the interval method, which carries that correlation (Student-t: none, by its assumption).
    rk = ranking.rank_scores(
        scores["condition"], scores["score"].to_numpy(), result.covariance(), alpha=alpha, tiebreak=opts.tiebreak,
        ci_low=scores["ci_low"].to_numpy(), ci_high=scores["ci_high"].to_numpy(), method=method,
    )
    subject = None
    if subject_model:
        subject = normalize.subject_model(main)
    params = {**common, "measure": measure, "rank_by": method,
              **{f"{measure}.{k}": v for k, v in extra.items()}, "subject_model": subject_model,
              **{f"ranking.{k}": v for k, v in rk.params.items()}}
    return AnalysisResult(
        kind="ratings", source="votes", scores=scores, ranking=rk, raters=sr.raters.copy(), counts=counts,
        params=params, notes=notes, screening=sr, mos=m.table, mos_content=m_content.table, subject=subject,
        published=opts.published,
    )


def _analyze_pair_table(df: pd.DataFrame, opts: AnalysisOptions, common: dict[str, Any]) -> AnalysisResult:
    ties, graded, alpha, tiebreak = opts.ties, opts.graded, opts.alpha, opts.tiebreak
    options = dict(opts.pair_table or {})
    if "method" in df.columns and "method" not in options:
        found = sorted(map(str, df["method"].dropna().unique()))
        if len(found) > 1:
            raise frames.FrameError([f"a pair table must use one method, got {found}"], "pair table")
        if found:
            options["method"] = found[0]
    pt = aggregate.from_pair_table(df, graded=graded, **options)
    fit = bt.fit_counts(pt.conditions, pt.wins, pt.ties, tie_model=ties, ci="hessian", alpha=alpha,
                        n_votes=pt.n_votes)
    rk = ranking.rank(fit, alpha=alpha, tiebreak=tiebreak, method="hessian")
    notes = ["a pair table has no rater ids: no screening and no rater-clustered intervals (Hessian intervals treat "
             "votes as independent)"]
    if pt.layout == "mean":
        notes.append("the table gives only the number of votes and the mean vote per pair: win/tie/loss counts "
                     f"were reconstructed under an assumption ({pt.assumption['rule']}, tie_share="
                     f"{pt.assumption['tie_share']}, strength={pt.assumption['strength']}); the order does not "
                     "depend on it, the spread of the scores does")
    counts = {"pairs": len(df), "votes": round(float(pt.n_votes.sum()) / 2), "conditions": len(pt.conditions)}
    raters = pd.DataFrame({c: pd.Series(dtype="object") for c in screening.RATER_COLUMNS})
    params = {**common, "kind": "pairwise", "source": "pair-table", "layout": pt.layout, "ties": ties,
              "graded": graded, "rank_by": "hessian", **{f"pair_table.{k}": v for k, v in pt.assumption.items()},
              **{f"bt.{k}": v for k, v in fit.settings().items() if k != "notes"},
              **{f"ranking.{k}": v for k, v in rk.params.items()}}
    params["bootstrap"] = 0
    params["ci"] = "model"
    pc = pt.pair_counts()
    return AnalysisResult(
        kind="pairwise", source="pair-table", scores=fit.to_frame(), ranking=rk, raters=raters, counts=counts,
        params=params, notes=notes, fit=fit, pair_counts=pc, published=opts.published,
    )
