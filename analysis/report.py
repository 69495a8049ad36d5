"""One call from a vote frame to a ranking, and a self-contained report directory.

:func:`analyze` runs the whole chain of PROTOCOL.md §3 on one input and keeps every
intermediate result and parameter; :func:`write_report` writes

``scores.csv``
    ``condition, score, se, ci_low, ci_high, ci_method, n_votes`` (ratings: + ``n_raters,
    sd``): Bradley–Terry scores or MOS (DMOS), one interval per condition, named by its
    method in ``ci_method``.
``ranking.csv``
    ``rank, condition, score, ci_low, ci_high, group, separated_by`` (+ ``rank_low,
    rank_high``), see :func:`analysis.ranking.rank`: the same intervals as ``scores.csv``,
    and the significance tests use the covariance of the same method
    (``params["rank_by"]``).
``raters.csv``
    One row per rater: the screening statistics, ``kept`` and ``dropped_by``.
``report.html``
    Plots (plotly.js embedded once, no network needed), the tables, every parameter,
    the package version, input row counts, who was dropped and why, the tie groups and
    the adjacent pairs the votes could not separate.

Intervals
---------
One rater's votes are not independent (raters differ in bias, decisiveness and taste), so
every interval, test and rank interval is **rater-clustered** by default (``ci="cluster"``:
the cluster-robust sandwich covariance, see :mod:`analysis.bradley_terry` and
:mod:`analysis.mos` for the formulas and sources). ``ci="bootstrap"`` resamples raters
instead (``bootstrap`` rounds); ``ci="model"`` gives the model-based intervals that treat
votes as independent (Hessian for Bradley–Terry, Student-t for MOS) — narrower than the
truth whenever raters differ. Whatever the method, every output carries one interval per
condition and names it.

The three inputs
----------------
* **pairwise votes** (``cond_a, cond_b, pref``): screen raters → fit Bradley–Terry on
  the kept raters' main votes → one fit per decision factor (``reason``) → rank with the
  covariance of the interval method.
* **ratings** (``cond, score``): screen → MOS per condition (and per content) → DMOS
  when the scale is ``acr-hr`` and the hidden reference is known → optional subject
  model → rank conditions by MOS (DMOS), testing differences with the covariance of the
  condition means (raters who scored several conditions correlate them).
* **pair table** (``cond_a, cond_b`` and counts or a mean vote, no ``pref``; see
  :func:`analysis.aggregate.from_pair_table`): no raters, so no screening and no
  rater-clustered interval — Hessian intervals only, and a note says so.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import analysis
from analysis import aggregate, frames, mos, normalize, plots, ranking, screening
from analysis import bradley_terry as bt

#: Files :func:`write_report` writes.
REPORT_FILES = ("scores.csv", "ranking.csv", "raters.csv", "report.html")
#: Leading columns of ``ranking.csv`` and ``scores.csv``.
RANKING_COLUMNS = ("rank", "condition", "score", "ci_low", "ci_high", "group", "separated_by")
SCORE_COLUMNS = ("condition", "score", "se", "ci_low", "ci_high", "ci_method", "n_votes")
#: Interval choices of :func:`analyze`: ``model`` is Hessian (Bradley–Terry) or Student-t (MOS).
CI_CHOICES = ("cluster", "bootstrap", "model")
#: How each interval method (``ci_method``, ``params["rank_by"]``) reads in a sentence.
METHOD_LABELS = {"cluster": "rater-clustered", "bootstrap": "rater-bootstrap",
                 "hessian": "model-based (Hessian; votes treated as independent)",
                 "t": "Student-t (scores treated as independent)"}
#: Names that mark the hidden reference of an ACR-HR study when no ``role`` column says so.
_REFERENCE_NAMES = ("ref", "reference", "source", "src")


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything :func:`analyze` computed, and how.

    Attributes
    ----------
    kind : {"pairwise", "ratings"}
    source : {"votes", "pair-table"}
        Per-vote rows or an aggregated pair table.
    scores : DataFrame
        ``condition, score, se, ci_low, ci_high, ci_method, n_votes`` (ratings: + ``n_raters, sd``).
    ranking : Ranking
        Final order, tie groups, pairwise tests and adjacent pairs.
    raters : DataFrame
        One row per rater (screening statistics, ``kept``, ``dropped_by``); empty for a
        pair table.
    by_reason : dict of str to DataFrame
        Per-factor score frames (pairwise votes only), intervals of ``params["rank_by"]``.
    counts : dict
        Input row counts (rows, repeats, gold, raters kept, votes fitted, ...).
    params : dict
        Every parameter used, including the fit's settings and the package version.
    notes : list of str
        Things the reader must know (factors not fitted, failed bootstrap rounds, ...).
    fit : BTResult, optional
        The overall Bradley–Terry fit.
    reason_fits : dict of str to BTResult
    screening : ScreeningResult, optional
    pair_counts : PairCounts, optional
        Counts behind the win-rate matrix (pairwise only).
    mos : DataFrame, optional
        MOS per condition (ratings; includes the reference when there is one).
    mos_content : DataFrame, optional
        MOS per (content, condition) (ratings).
    subject : SubjectModelResult, optional
        The subject model, when asked for.
    published : DataFrame, optional
        Published scores to draw next to ours (``condition, score``).
    objective : ObjectiveSummary, optional
        With a tie-breaker: the objective score of every condition next to its score,
        and the scorer's agreement with the votes (see :func:`objective_summary`).
    """

    kind: str
    source: str
    scores: pd.DataFrame
    ranking: ranking.Ranking
    raters: pd.DataFrame
    by_reason: dict[str, pd.DataFrame] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fit: bt.BTResult | None = None
    reason_fits: dict[str, bt.BTResult] = field(default_factory=dict)
    screening: screening.ScreeningResult | None = None
    pair_counts: bt.PairCounts | None = None
    mos: pd.DataFrame | None = None
    mos_content: pd.DataFrame | None = None
    subject: normalize.SubjectModelResult | None = None
    published: pd.DataFrame | None = None
    objective: ObjectiveSummary | None = None

    @property
    def groups(self) -> list[list[str]]:
        """Statistically tied groups of conditions, best first."""
        return self.ranking.groups

    @property
    def unresolved(self) -> pd.DataFrame:
        """Adjacent pairs of the final order that neither the votes nor a tie-breaker separated."""
        adj = self.ranking.adjacent
        return adj[adj["separated_by"] == "unresolved"].reset_index(drop=True)


# ----------------------------------------------------------------------------------------
# Input detection
# ----------------------------------------------------------------------------------------


def is_pair_table(df: pd.DataFrame) -> bool:
    """A pair table has ``cond_a, cond_b`` but no per-vote ``pref``.

    Parameters
    ----------
    df : DataFrame

    Returns
    -------
    bool
    """
    cols = set(map(str, df.columns))
    return {"cond_a", "cond_b"} <= cols and "pref" not in cols


def read_input(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read votes (``.csv``/``.parquet``), a pair table, or an NTIRE result file (``.txt``).

    Nothing is validated here (:func:`analyze` does it, listing every problem).

    Parameters
    ----------
    path : str or Path
        ``.txt`` is read as an NTIRE result file, anything else by
        :func:`analysis.frames.read_table` (Parquet, or CSV with ids read as text).

    Returns
    -------
    frame : DataFrame
    published : DataFrame or None
        For an NTIRE file: the published BT scores as ``condition, score`` (centred
        logs of the published strengths).

    Raises
    ------
    frames.FrameError
        When the file is missing or cannot be parsed.
    """
    path = Path(path)
    if path.suffix.lower() != ".txt":
        return frames.read_table(path), None  # ids as text: a condition named "NA" is that name
    if not path.is_file():
        raise frames.FrameError([f"{path}: no such file"])
    try:
        res = aggregate.read_ntire(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise frames.FrameError([f"{path}: cannot be read: {exc}"]) from exc
    pub = None
    if len(res.published):
        pub = res.published[["condition", "log_vote"]].rename(columns={"log_vote": "score"})
    return res.pairs[["cond_a", "cond_b", "n", "mean_pref"]].copy(), pub


# ----------------------------------------------------------------------------------------
# analyze
# ----------------------------------------------------------------------------------------


def analyze(
    votes: pd.DataFrame,
    ties: bt.TieModel = "davidson",
    bootstrap: int = 1000,
    seed: int | None = 0,
    screening_rules: screening.ScreeningRules | None = None,
    tiebreak: ranking.TieBreaker | None = None,
    reasons: Iterable[str] | None = None,
    *,
    graded: bool = False,
    alpha: float = 0.05,
    normalize_scores: mos.Normalisation = None,
    reference: str | None = None,
    subject_model: bool = False,
    pair_table: Mapping[str, Any] | None = None,
    published: pd.DataFrame | None = None,
    ci: str = "cluster",
) -> AnalysisResult:
    """Screen, fit, rank: the whole analysis of one study.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes, ratings, or a pair table (detected from the columns; see the
        module docstring).
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
    reasons : iterable of str, optional
        Decision factors to fit separately (default: every factor in the votes).
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
        Options of :func:`analysis.aggregate.from_pair_table` (``scale``,
        ``tie_share``, ``strength``) for a pair table.
    published : DataFrame, optional
        ``condition, score`` on our scale, drawn next to our scores in the report.
    ci : {"cluster", "bootstrap", "model"}
        Interval method of every interval and test (see the module docstring).

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
        Bad parameters, or screening left nobody.
    """
    if not isinstance(votes, pd.DataFrame):
        raise frames.FrameError([f"expected a pandas DataFrame, got {type(votes).__name__}"])
    if ci not in CI_CHOICES:
        raise ValueError(f"ci must be one of {', '.join(CI_CHOICES)}, got {ci!r}")
    if ci == "bootstrap" and bootstrap < 2:
        raise ValueError("the rater bootstrap needs at least 2 rounds")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if ties not in bt.TIE_MODELS:
        raise ValueError(f"ties must be one of {', '.join(bt.TIE_MODELS)}, got {ties!r}")
    common = {"version": analysis.__version__, "alpha": alpha, "ci": ci,
              "bootstrap": bootstrap if ci == "bootstrap" else 0, "seed": seed,
              "tiebreak": None if tiebreak is None else ranking.tiebreak_id(tiebreak)}
    if is_pair_table(votes):
        res = _analyze_pair_table(votes, ties, graded, alpha, tiebreak, dict(pair_table or {}), common, published)
        return _with_objective(res, tiebreak, None)
    df = frames.validate(votes)
    kind = frames.detect_kind(df)
    rules = screening_rules if screening_rules is not None else screening.ScreeningRules()
    # Validated once here; everything below takes the validated frame as it is.
    sr = screening._screen(df, rules)
    kept_rows = sr.kept_votes(df)
    if len(kept_rows) == 0:
        raise ValueError(f"screening dropped every rater ({len(sr.raters)}); see raters.csv or relax the rules")
    main = screening._main(kept_rows)
    if len(main) == 0:
        raise ValueError("no main votes left after screening (only repeats and gold trials)")
    counts = _row_counts(df, sr, main)
    common |= {"kind": kind, "source": "votes", "screening": asdict(rules), "loo_level": sr.loo_level,
               "screening.agreement_min_n": dict(sr.agreement_min_n)}
    if kind == "pairwise":
        res = _analyze_pairwise(main, sr, counts, ties, graded, (ci, bootstrap), seed, alpha, tiebreak, reasons,
                                common, published)
        return _with_objective(_with_screening_notes(res, sr), tiebreak, main)
    res = _analyze_ratings(main, sr, counts, (ci, bootstrap), seed, alpha, tiebreak, normalize_scores, reference,
                           subject_model, common, published)
    return _with_objective(_with_screening_notes(res, sr), tiebreak, None)


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


def _method(main: pd.DataFrame, ci: tuple[str, int], model: str, notes: list[str]) -> tuple[str, int]:
    """The interval method to fit with (``model`` names the model-based one) and its rounds."""
    method, rounds = ci
    if method == "model":
        return model, 0
    n_raters = int(main["rater"].nunique())
    if method == "bootstrap" and n_raters < MIN_BOOTSTRAP_RATERS:
        notes.append(f"only {n_raters} rater(s) left after screening: the rater bootstrap was refused and the "
                     "intervals are rater-clustered instead")
        return "cluster", 0
    return method, rounds if method == "bootstrap" else 0


def _analyze_pairwise(main, sr, counts, ties, graded, ci, seed, alpha, tiebreak, reasons, common, published):
    notes: list[str] = []
    method, rounds = _method(main, ci, "hessian", notes)
    # ``main`` holds main votes already: count them once, for the fit and the win-rate matrix.
    votes = bt._count(main, graded)
    fit_kw = {"ties": ties, "graded": graded, "ci": method, "n_boot": max(rounds, 2), "seed": seed, "alpha": alpha}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a refused bootstrap is said in the notes instead
        fit = bt._fit_votes(votes, **fit_kw)
    notes.extend(fit.params.get("notes", []))
    if fit.params.get("boot_failed") and fit.boot is not None:
        notes.append(f"{fit.params['boot_failed']} of {rounds} bootstrap rounds had no finite scores or did not "
                     "converge and were left out of the bootstrap intervals")
    rk = ranking.rank(fit, alpha=alpha, tiebreak=tiebreak)
    wanted = bt.present_reasons(main) if reasons is None else [frames.normalize_id(str(r)) for r in reasons]
    # A factor named by too few raters to determine every score is left out (and said so);
    # the other factors and the overall fit stand.
    failed: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason_fits = bt._fit_by_reason(main, wanted, on_error="skip", failures=failed, main_only=False, **fit_kw)
    notes.extend(f"factor {reason!r} not fitted: {msg}" for reason, msg in failed.items())
    notes.extend(f"factor {reason!r}: {note}" for reason, f in reason_fits.items() for note in f.params["notes"])
    params = {**common, **{f"bt.{k}": v for k, v in fit.settings().items() if k != "notes"}, "ties": ties,
              "graded": graded, "rank_by": fit.ci, "reasons": wanted,
              **{f"ranking.{k}": v for k, v in rk.params.items()}}
    return AnalysisResult(
        kind="pairwise", source="votes", scores=fit.to_frame(), ranking=rk, raters=sr.raters.copy(),
        by_reason={r: f.to_frame() for r, f in reason_fits.items()}, counts=counts,
        params=params, notes=notes, fit=fit, reason_fits=reason_fits, screening=sr,
        pair_counts=bt._count(main, graded=False).pairs if graded else votes.pairs, published=published,
    )


def _reference_for(main: pd.DataFrame, reference: str | None) -> str | None:
    if reference is not None or "role" in main.columns:
        return reference
    names = {str(c) for c in main["cond"].unique()}
    found = sorted(c for c in names if c.lower() in _REFERENCE_NAMES)
    return found[0] if len(found) == 1 else None


def _analyze_ratings(main, sr, counts, ci, seed, alpha, tiebreak, normalise, reference, subject_model,
                     common, published):
    level = 1 - alpha
    notes: list[str] = []
    method, rounds = _method(main, ci, "t", notes)
    seed = 0 if seed is None else seed
    boot_kw = {"n_boot": max(rounds, 2), "seed": seed, "level": level}
    m = mos._mos(main, ("cond",), method, normalize=normalise, keep_cov=True, **boot_kw)
    m_content = mos._mos(main, ("content", "cond"), method, normalize=normalise, keep_cov=False, **boot_kw)
    measure, result, extra = "mos", m, dict(m.params)
    scales = sorted(map(str, main["scale"].unique()))
    if scales == ["acr-hr"]:
        ref = _reference_for(main, reference)
        try:
            d = mos._dmos(main, ref, ("cond",), method, keep_cov=True, **boot_kw)
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
        scores["condition"], scores["score"].to_numpy(), result.covariance(), alpha=alpha, tiebreak=tiebreak,
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
        published=published,
    )


def _analyze_pair_table(df, ties, graded, alpha, tiebreak, options, common, published):
    if "scale" in df.columns and "scale" not in options:
        found = sorted(map(str, df["scale"].dropna().unique()))
        if len(found) > 1:
            raise frames.FrameError([f"a pair table must use one scale, got {found}"], "pair table")
        if found:
            options["scale"] = found[0]
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
        params=params, notes=notes, fit=fit, pair_counts=pc, published=published,
    )


# ----------------------------------------------------------------------------------------
# The objective scorer next to the votes (tie-break display)
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ObjectiveSummary:
    """What a reader needs to judge a tie-breaker (see :func:`objective_summary`).

    Attributes
    ----------
    label : str
        ``tiebreak:<name>@<version>``, as in ``separated_by``.
    status : str
        How far the scorer can be trusted: uncalibrated prior, cross-fitted head, S_obj, ...
    basis : str
        What ``objective`` means for this tie-breaker.
    table : DataFrame
        ``rank, condition, group, score, objective, tiebreak_value, separated_by`` in
        final order: ``objective`` against every other condition, ``tiebreak_value``
        against the other members of the condition's tie group (the value that ordered
        the group; empty for a condition alone in its group).
    agreement : dict
        ``n_conditions, srocc, krcc, plcc`` (objective vs score; ``plcc_poly3`` and
        ``main_score`` from :func:`analysis.agreement.agreement` with ≥ 5 conditions),
        ``pairwise_accuracy, n_votes`` over decided votes, ``tied_accuracy, n_tied_votes``
        over decided votes between members of one tie group.
    separated : list of str
        Adjacent pairs of the final order that the scorer (not the votes) separated.
    notes : list of str
    """

    label: str
    status: str
    basis: str
    table: pd.DataFrame
    agreement: dict[str, Any]
    separated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        """One line for a terminal.

        Returns
        -------
        str
            Label and status, separated pairs, SROCC, PLCC and (with decided votes) the
            pairwise accuracy.
        """
        a = self.agreement
        parts = [f"tie-breaker {self.label} [{self.status}]",
                 f"separated {len(self.separated)} adjacent pair(s)",
                 f"SROCC {_fmt_num(a.get('srocc'))}", f"PLCC {_fmt_num(a.get('plcc'))}"]
        if a.get("n_votes"):
            parts.append(f"pairwise accuracy {_fmt_num(a.get('pairwise_accuracy'))} on {a['n_votes']} decided votes")
        return "; ".join(parts)


def _fmt_num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(f) else f"{f:.3f}"


_TIEBREAK_ERRORS = (ValueError, LookupError, RuntimeError, OSError)


def _tiebreak_status(tiebreak: Any) -> tuple[str, str, list[str]]:
    scorer = getattr(tiebreak, "scorer", None)
    pair_basis = ("mean p_sym(condition, other) over shared contents, averaged over every other condition; "
                  "the tie-break value uses the other members of the tie group only")
    if getattr(tiebreak, "s_obj", None) is not None:
        return "S_obj (challenge score per condition)", "S_obj of the condition (PROTOCOL.md §4)", []
    if scorer is not None and hasattr(scorer, "crossfit"):
        return ("fitted head, cross-fitted (no pair is judged by a head trained on its own votes)", pair_basis, [])
    if scorer is not None and getattr(scorer, "calibrated", None) is False:
        return ("uncalibrated (prior weights, not fitted to votes)", pair_basis,
                ["the tie-breaker uses the scorer's prior weights, which were set by hand: judge it by its "
                 "agreement with the votes below (`panelrank fit-scorer` fits a head on this study's votes)"])
    if scorer is not None and getattr(scorer, "calibrated", None) is True:
        return ("fitted head (not cross-fitted)", pair_basis,
                ["a head fitted on these votes without cross-fitting may repeat the votes that failed to "
                 "separate a pair; prefer the model file written by `panelrank fit-scorer`"])
    if scorer is not None:
        return "scorer", pair_basis, []
    return "external tie-breaker", "the value the tie-breaker returns for the condition", []


def _condition_pair_table(votes: pd.DataFrame, objective: Mapping[str, float]) -> pd.DataFrame:
    """Pair scores from per-condition values: p = 1, 0.5 or 0 as the objective says."""
    cells = votes.loc[:, ["content", "cond_a", "cond_b"]].astype(str).drop_duplicates()
    a = cells["cond_a"].map(objective).astype(float)
    b = cells["cond_b"].map(objective).astype(float)
    keep = a.notna() & b.notna()
    out = cells[keep].copy()
    out["p"] = 0.5 + 0.5 * np.sign((a - b)[keep].to_numpy())
    return out


def objective_summary(result: AnalysisResult, tiebreak: ranking.TieBreaker,
                      votes: pd.DataFrame | None = None) -> ObjectiveSummary:
    """The tie-breaker's objective score of every condition and its agreement with the votes.

    Parameters
    ----------
    result : AnalysisResult
        A finished analysis ranked with ``tiebreak``.
    tiebreak : TieBreaker
        Called once with every condition (the objective score) and once per tie group
        (the value that ordered it); an objective tie-breaker caches what it scored.
    votes : DataFrame, optional
        The fitted (main, kept) pairwise votes, for the pairwise accuracy. A tie-breaker
        with ``pair_table()`` (see :mod:`analysis.objective.tiebreak`) is judged per
        content on p_sym; otherwise by the sign of the per-condition difference.

    Returns
    -------
    ObjectiveSummary
        A tie-breaker that fails (``ValueError``, ``LookupError``, ``RuntimeError``,
        ``OSError``) leaves NaN in the table and a line in ``notes`` instead of raising.
    """
    label = ranking._tiebreak_label(tiebreak)
    status, basis, notes = _tiebreak_status(tiebreak)
    table = result.ranking.table.loc[:, ["rank", "condition", "group", "score", "separated_by"]].copy()
    conds = [str(c) for c in table["condition"]]
    objective: dict[str, float] = {}
    try:
        values = tiebreak(conds)
        objective = {c: float(values[c]) for c in conds if c in values}
    except _TIEBREAK_ERRORS as exc:
        notes.append(f"objective score of every condition not computed: {exc}")
    in_group: dict[str, float] = {}
    for members in result.ranking.groups:
        if len(members) > 1:
            try:
                in_group.update({c: float(v) for c, v in tiebreak(list(members)).items()})
            except _TIEBREAK_ERRORS as exc:
                notes.append(f"tie-break values of group {members} not recomputed: {exc}")
    table["objective"] = [objective.get(c, np.nan) for c in conds]
    table["tiebreak_value"] = [in_group.get(c, np.nan) for c in conds]
    table = table.loc[:, ["rank", "condition", "group", "score", "objective", "tiebreak_value", "separated_by"]]

    agree = _rank_agreement(table["objective"].to_numpy(dtype=float), table["score"].to_numpy(dtype=float), notes)
    if votes is not None and {"content", "cond_a", "cond_b", "pref"} <= set(votes.columns):
        agree |= _vote_agreement(tiebreak, votes, objective, table)
    adj = result.ranking.adjacent
    separated = adj.loc[adj["separated_by"] == label, "pair"].astype(str).tolist()
    return ObjectiveSummary(label=label, status=status, basis=basis, table=table, agreement=agree,
                            separated=separated, notes=notes)


def _rank_agreement(x: np.ndarray, y: np.ndarray, notes: list[str]) -> dict[str, Any]:
    """``n_conditions, srocc, krcc, plcc`` (+ ``plcc_poly3, main_score`` with ≥ 5) of objective ``x``
    against score ``y`` over the conditions where both are finite; problems go to ``notes``."""
    from scipy import stats

    from analysis import agreement as agreement_mod

    ok = np.isfinite(x) & np.isfinite(y)
    agree: dict[str, Any] = {"n_conditions": int(ok.sum())}
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        agree.update(srocc=np.nan, krcc=np.nan, plcc=np.nan)
        notes.append("fewer than 3 conditions with distinct objective scores: no rank correlation")
        return agree
    agree["srocc"] = float(stats.spearmanr(x[ok], y[ok])[0])
    agree["krcc"] = float(stats.kendalltau(x[ok], y[ok])[0])
    agree["plcc"] = float(stats.pearsonr(x[ok], y[ok])[0])
    if ok.sum() >= 5:
        try:
            full = agreement_mod.agreement(x[ok], y[ok])
            agree["plcc_poly3"] = full.plcc_poly3
            agree["main_score"] = full.main_score
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            notes.append(f"mapped PLCC not computed: {exc}")
    return agree


def _vote_agreement(tiebreak: ranking.TieBreaker, votes: pd.DataFrame, objective: Mapping[str, float],
                    table: pd.DataFrame) -> dict[str, Any]:
    """Pairwise accuracy of the tie-breaker on the decided votes, overall and inside tie groups."""
    from analysis.objective.tiebreak import pairwise_agreement

    agree: dict[str, Any] = {}
    pt = tiebreak.pair_table() if hasattr(tiebreak, "pair_table") else None
    if pt is None or len(pt) == 0:
        pt = _condition_pair_table(votes, objective)
        agree["pairwise_basis"] = "sign of the per-condition objective difference"
    else:
        agree["pairwise_basis"] = "p_sym per content"
    v = votes.loc[:, ["content", "cond_a", "cond_b", "pref"]].astype({"content": str, "cond_a": str, "cond_b": str})
    whole = pairwise_agreement(pt, v)
    agree["pairwise_accuracy"], agree["n_votes"] = whole["accuracy"], whole["n"]
    group_of = dict(zip(table["condition"].astype(str), table["group"], strict=True))
    size = table["group"].value_counts()
    ga, gb = v["cond_a"].map(group_of), v["cond_b"].map(group_of)
    tied = (ga == gb) & ga.map(size).gt(1)
    within = pairwise_agreement(pt, v[tied.fillna(False).to_numpy(dtype=bool)])
    agree["tied_accuracy"], agree["n_tied_votes"] = within["accuracy"], within["n"]
    return agree


def _with_objective(result: AnalysisResult, tiebreak: ranking.TieBreaker | None,
                    votes: pd.DataFrame | None) -> AnalysisResult:
    if tiebreak is None:
        return result
    return replace(result, objective=objective_summary(result, tiebreak, votes))


# ----------------------------------------------------------------------------------------
# write_report
# ----------------------------------------------------------------------------------------


def ranking_frame(result: AnalysisResult) -> pd.DataFrame:
    """``ranking.csv``: the documented columns first (with a tie-breaker, then ``objective`` and
    ``tiebreak_value``, see :class:`ObjectiveSummary`).

    Parameters
    ----------
    result : AnalysisResult

    Returns
    -------
    DataFrame
        One row per condition in final order: :data:`RANKING_COLUMNS`, then any others.
    """
    table = result.ranking.to_frame()
    if result.objective is not None:
        extra = result.objective.table.loc[:, ["condition", "objective", "tiebreak_value"]]
        table = table.merge(extra, on="condition", how="left")
    table["ci_method"] = result.params.get("rank_by", "")
    rest = [c for c in table.columns if c not in RANKING_COLUMNS]
    return table[list(RANKING_COLUMNS) + rest]


def write_report(result: AnalysisResult, out_dir: str | Path) -> Path:
    """Write ``scores.csv``, ``ranking.csv``, ``raters.csv`` and ``report.html`` to ``out_dir``.

    Everything is rendered into a temporary directory next to ``out_dir`` first; a new
    ``out_dir`` then appears in one rename, an existing one gets each file replaced by a
    rename. A failure while rendering leaves ``out_dir`` untouched.

    Parameters
    ----------
    result : AnalysisResult
        What :func:`analyze` returned.
    out_dir : str or Path
        Report directory (created, with its parents, when missing).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    NotADirectoryError
        When ``out_dir`` exists and is not a directory.
    OSError
        When a file cannot be written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mkdtemp makes the directory private (0700); the report directory gets the usual mode.
        tmp.chmod(0o777 & ~_umask())
        result.scores.to_csv(tmp / "scores.csv", index=False)
        ranking_frame(result).to_csv(tmp / "ranking.csv", index=False)
        result.raters.to_csv(tmp / "raters.csv", index=False)
        (tmp / "report.html").write_text(render_html(result), encoding="utf-8")
        if not out.exists():
            try:
                tmp.rename(out)
                return out
            except OSError:  # created concurrently: fall through to per-file replacement
                out.mkdir(exist_ok=True)
        for name in REPORT_FILES:
            os.replace(tmp / name, out / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1a1a1a;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{padding:.25rem .6rem;text-align:right;
border-bottom:1px solid #eee}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{background:#fff7e0;border-left:4px solid #E69F00;padding:.4rem .8rem;margin:.4rem 0}
.muted{color:#555}.kv td{text-align:left}code{background:#f4f4f4;padding:0 .2rem}
.sep-votes{color:#006b3c}.sep-unresolved{color:#b00020;font-weight:600}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(df: pd.DataFrame, max_rows: int | None = None) -> str:
    shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
    body = shown.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}", escape=True)
    more = f'<p class="muted">… {len(df) - len(shown)} more rows in the CSV.</p>' if len(shown) < len(df) else ""
    return body + more


def _kv(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td><code>{_esc(k)}</code></td><td>{_esc(_fmt(v))}</td></tr>" for k, v in items.items())
    return f'<table class="kv"><tr><th>name</th><th>value</th></tr>{rows}</table>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "—"
    if v is None:
        return "—"
    return str(v)


def _flat(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _figures(result: AnalysisResult) -> list[tuple[str, str, Any]]:
    """(anchor, caption, figure) in page order."""
    order = list(result.ranking.table["condition"])
    score_label = ("Bradley–Terry score (centred log-strength)" if result.kind == "pairwise"
                   else f"{result.params.get('measure', 'mos').upper()} (scale points)")
    method = METHOD_LABELS.get(result.params.get("rank_by", ""), result.params.get("rank_by", ""))
    main_frame = result.ranking.table[["condition", "score", "ci_low", "ci_high"]]
    if "n_votes" in result.scores.columns:
        main_frame = main_frame.merge(result.scores[["condition", "n_votes"]], on="condition", how="left")
    caption = f"Scores with 95% intervals ({method})" + (
        "; bottom panel: one fit per decision factor (same votes, only those naming the factor)."
        if result.by_reason else ".")
    figs = [("intervals", caption,
             plots.interval_plot(main_frame, result.by_reason or None, result.published,
                                 title="Scores with 95% confidence intervals", score_label=score_label))]
    if result.pair_counts is not None:
        figs.append(("winrate", "Share of votes preferring the row condition (ties count half), best first.",
                     plots.winrate_heatmap(result.pair_counts, order=order)))
    if result.mos_content is not None:
        figs.append(("mos-content", f"MOS per content (95% intervals, {method}).",
                     plots.mos_per_content(result.mos_content)))
    if len(result.raters):
        figs.append(("rater-qc", "Each rater's screening statistics; dropped raters are crosses (hover: rule).",
                     plots.rater_qc(result.raters)))
    return figs


def _ranking_section(result: AnalysisResult) -> str:
    rk = result.ranking
    groups = rk.groups
    tied = [g for g in groups if len(g) > 1]
    parts = [_table(ranking_frame(result))]
    parts.append(f"<p>{len(groups)} group(s): a group links conditions through adjacent pairs the votes cannot "
                 f"separate at the family-wise level α = {_esc(result.params.get('alpha'))} (Holm-corrected "
                 f"z-tests, covariance: {_esc(rk.params.get('method'))}); two members of one group may still be "
                 "separated from each other — the rank ranges say so.</p>")
    if tied:
        items = "".join(f"<li>group {k}: {_esc(', '.join(g))}</li>" for k, g in enumerate(groups, 1) if len(g) > 1)
        parts.append(f"<p>Statistically tied groups:</p><ul>{items}</ul>")
    else:
        parts.append("<p>Every condition is separated from every other by the votes.</p>")
    unresolved = result.unresolved
    if len(unresolved):
        items = "".join(f'<li class="sep-unresolved">{_esc(p)} (adjusted p = {q:.3g})</li>'
                        for p, q in zip(unresolved["pair"], unresolved["p_adjusted"], strict=True))
        parts.append("<p>Adjacent pairs <b>not resolved</b> (same rank; no tie-breaker decided them):</p>"
                     f"<ul>{items}</ul>")
    tb = rk.params.get("tiebreak")
    if tb:
        parts.append(f"<p>Tie-breaker: <code>{_esc(tb)}</code>; rows separated by it say "
                     f"<code>tiebreak:{_esc(tb)}</code> in <code>separated_by</code>.</p>")
    parts.append("<h3>Adjacent pairs</h3>" + _table(rk.adjacent))
    return "\n".join(parts)


_AGREEMENT_LABELS = {
    "n_conditions": "conditions compared",
    "srocc": "SROCC (objective vs score)",
    "krcc": "KRCC (objective vs score)",
    "plcc": "PLCC (objective vs score, linear)",
    "plcc_poly3": "PLCC after a cubic mapping",
    "main_score": "(|SROCC| + |PLCC|) / 2",
    "pairwise_accuracy": "pairwise accuracy: share of decided votes on the scorer's side",
    "n_votes": "decided votes with a score",
    "tied_accuracy": "pairwise accuracy on votes inside tie groups",
    "n_tied_votes": "decided votes inside tie groups",
    "pairwise_basis": "pairwise accuracy judged on",
}


def _objective_section(result: AnalysisResult) -> str:
    obj = result.objective
    if obj is None:
        return ""
    parts = ['<h2 id="objective">Objective scorer (tie-breaker)</h2>',
             f"<p>Tie-breaker <code>{_esc(obj.label)}</code>: <b>{_esc(obj.status)}</b>. "
             f"<i>objective</i> = {_esc(obj.basis)}.</p>"]
    parts.extend(f'<p class="note">{_esc(n)}</p>' for n in obj.notes)
    if obj.separated:
        items = "".join(f"<li>{_esc(p)}</li>" for p in obj.separated)
        parts.append(f"<p>Adjacent pairs separated by the scorer, not by the votes:</p><ul>{items}</ul>")
    else:
        parts.append("<p>The scorer separated no adjacent pair (every step of the order is decided by votes).</p>")
    parts.append("<h3>Objective score next to the vote score</h3>" + _table(obj.table))
    labelled = {_AGREEMENT_LABELS.get(k, k): v for k, v in obj.agreement.items()}
    parts.append("<h3>Agreement of the scorer with the votes</h3>" + _kv(labelled)
                 + '<p class="muted">Pairwise accuracy near 0.5 means the scorer agrees with the votes no more '
                   "than a coin; on pairs inside tie groups the votes are close to evenly split, so expect "
                   "little there.</p>")
    return "\n".join(parts)


def _screening_section(result: AnalysisResult) -> str:
    if result.screening is None:
        return "<p>No rater-level data (pair table): nobody was screened.</p>"
    raters = result.raters
    dropped = raters[~raters["kept"].astype(bool)]
    counts = {}
    for names in dropped["dropped_by"].astype(str):
        for rule in filter(None, names.split(";")):
            counts[rule] = counts.get(rule, 0) + 1
    parts = [f"<p>{len(raters) - len(dropped)} of {len(raters)} raters kept, {len(dropped)} dropped.</p>"]
    if counts:
        parts.append("<p>Dropped per rule (a rater may be dropped by several): "
                     + ", ".join(f"<code>{_esc(r)}</code> {n}" for r, n in counts.items()) + ".</p>")
        cols = [c for c in ("rater", "dropped_by", "n_votes", "consistency", "gold_accuracy", "bt_agreement",
                            "bt_p", "loo_corr", "loo_p", "left_share", "position_p", "median_watch_ms",
                            "median_answer_ms", "kurtosis")
                if c in dropped.columns and dropped[c].notna().any()]
        parts.append("<h3>Dropped raters and why</h3>" + _table(dropped[cols]))
    parts.extend(f'<p class="note">{_esc(n)}</p>' for n in result.screening.notes)
    if result.screening.agreement_min_n:
        parts.append("<p>Votes (or items) a rater needs before an agreement rule can judge them: "
                     + ", ".join(f"<code>{_esc(k)}</code> {v:g}" for k, v in result.screening.agreement_min_n.items())
                     + ".</p>")
    parts.append("<h3>Rules (None = disabled)</h3>" + _kv(asdict(result.screening.rules)))
    return "\n".join(parts)


def _ratings_extra(result: AnalysisResult) -> str:
    parts = []
    if result.mos is not None and result.params.get("measure") == "dmos":
        parts.append("<h3>MOS per condition (reference included)</h3>" + _table(result.mos))
    if result.subject is not None:
        s = result.subject
        parts.append(f"<h3>Subject model</h3><p>log-likelihood {s.log_likelihood:.6g}, {s.n_iter} iterations, "
                     f"converged: {s.converged}.</p>" + _table(s.raters, max_rows=200))
    return "\n".join(parts)


def render_html(result: AnalysisResult) -> str:
    """The report page as one HTML string (plotly.js embedded once, inline).

    Parameters
    ----------
    result : AnalysisResult

    Returns
    -------
    str
        A self-contained HTML document (stamped with the current UTC time).
    """
    figs = _figures(result)
    fig_html = []
    for k, (anchor, caption, fig) in enumerate(figs):
        div = plots.to_html(fig, include_plotlyjs=k == 0, full_html=False)
        fig_html.append(f'<figure id="{anchor}">{div}<figcaption class="muted">{_esc(caption)}</figcaption></figure>')
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in result.notes)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = result.params.get("version", analysis.__version__)
    title = f"panelrank analysis — {result.kind} ({result.source})"
    sections = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">panelrank <code>analysis</code> version <b>{_esc(version)}</b> · generated {stamp}</p>',
        notes,
        "<h2>Input</h2>" + _kv(result.counts),
        "<h2>Ranking</h2>" + _ranking_section(result),
        _objective_section(result),
        "<h2>Plots</h2>" + "\n".join(fig_html),
        "<h2>Scores</h2>" + _table(result.scores),
        _ratings_extra(result),
        "<h2>Rater screening</h2>" + _screening_section(result),
        "<h2>Parameters</h2>" + _kv({k: v for k, v in _flat(result.params).items() if not k.startswith("screening.")}),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")


def summary(result: AnalysisResult, conditions: Sequence[str] | None = None) -> str:
    """A few plain-text lines for a terminal: the ranking with groups and how each step was decided.

    Parameters
    ----------
    result : AnalysisResult
    conditions : sequence of str, optional
        Only these conditions' lines (default: all).

    Returns
    -------
    str
        A line naming the interval method, then one line per condition: rank, name, score,
        interval, group and ``separated_by``.
    """
    table = ranking_frame(result)
    if conditions is not None:
        table = table[table["condition"].isin(list(conditions))]
    method = result.params.get("rank_by", "")
    lines = [f"{1 - result.params.get('alpha', 0.05):.0%} intervals: {METHOD_LABELS.get(method, method)}"]
    lines += [f"{r.rank:>3}  {r.condition:<20} {r.score:+.3f}  [{r.ci_low:+.3f}, {r.ci_high:+.3f}]  "
              f"group {r.group}  {r.separated_by}" for r in table.itertuples()]
    return "\n".join(lines)
