"""``panelrank analyze``, ``simulate``, ``score`` and ``challenge-score`` (plain click commands),
and the objective-scorer plumbing the study commands share (``study_app.scoring``).

They need no Flask app: :data:`COMMANDS` and :data:`SCORER_COMMANDS` are registered on
the ``panelrank`` group by ``study_app.cli``, and the commands can be run directly with
``click.testing.CliRunner``. Any problem with the input (every schema problem at once,
a disconnected comparison graph, screening that leaves nobody, a scorer that cannot
run) becomes a ``click.ClickException`` naming it, exit status 1, and nothing is written.

Scorer model files
------------------
``panelrank fit-scorer`` writes one JSON file (:func:`save_scorer_model`) holding the
base scorer's configuration, the cross-fitted heads (one per fold of condition pairs),
the head fitted on every vote and the fit report. Wherever a scorer name is accepted
(``--tiebreak``, ``--scorer``), the path of such a file (``*.json``) is accepted too:
the tie-breaker then judges each condition pair with the head that never saw its votes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from analysis import bradley_terry, frames, report, screening, simulate
from analysis.objective import base as obj_base
from analysis.objective.cache import CachedScorer, ScoreCache, score_stimuli, text_progress
from analysis.objective.head import CrossFit, CrossFitScorer, Head, HeadScorer, cross_fit_heads, join_votes_features
from analysis.objective.head import pairwise_metrics as head_metrics
from analysis.objective.tiebreak import TieBreaker, make_tiebreaker, stimuli_frame


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


# ========================================================================================
# Scorer plumbing (pure: files and frames in, objects out; no click in here)
# ========================================================================================

#: ``format`` of a scorer model file written by :func:`save_scorer_model`.
MODEL_FORMAT = "panelrank-scorer-model/1"
#: Columns of a stimuli CSV (``--stimuli``).
STIMULI_COLUMNS = ("content", "condition", "path")
#: Errors a scorer can raise while being built or run, turned into clear CLI errors.
SCORER_ERRORS = (obj_base.ScorerError, obj_base.UnknownScorerError, ValueError, OSError, ImportError)


def parse_options(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["frames=16", "threads=false"]`` → ``{"frames": 16, "threads": False}``.

    Each value is read as JSON when it parses (numbers, ``true``/``false``, ``null``,
    lists, objects), otherwise kept as the plain string. A mapping passes through.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r} is not of the form key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def normalise_scorer_config(config: str | Mapping[str, Any]) -> dict[str, Any]:
    """``"handcrafted"`` or ``{name, options}`` → ``{"name": ..., "options": {...}}``."""
    if isinstance(config, str):
        return {"name": config, "options": {}}
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str) or not config["name"]:
        raise ValueError(f"a scorer is a name or a mapping {{name, options}}, got {config!r}")
    options = config.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"scorer options must be a mapping, got {options!r}")
    extra = sorted(set(config) - {"name", "options"})
    if extra:
        raise ValueError(f"unknown scorer key(s) {extra} (only name and options)")
    return {"name": str(config["name"]), "options": dict(options)}


def build_scorer(config: str | Mapping[str, Any]) -> obj_base.Scorer:
    """Instantiate a scorer from a name or ``{name, options}``; bad options are a ValueError."""
    cfg = normalise_scorer_config(config)
    try:
        return obj_base.scorer_from_config(cfg)
    except TypeError as exc:  # unexpected keyword: name the scorer and the option
        raise ValueError(f"scorer {cfg['name']!r}: bad option(s) {sorted(cfg['options'])}: {exc}") from exc


def is_model_file(spec: Any) -> bool:
    """True when ``spec`` names a scorer model file (``*.json``) rather than a scorer."""
    return isinstance(spec, str | os.PathLike) and str(spec).lower().endswith(".json")


@dataclass(frozen=True)
class ScorerModel:
    """A head fitted on votes by ``fit-scorer``: cross-fitted per condition pair, plus a full fit.

    Attributes
    ----------
    base
        ``{"name", "options"}`` of the scorer whose features the heads read.
    crossfit
        Fold heads and the fold of every condition pair (see :func:`cross_fit_heads`).
    report
        Fit sizes, held-out and cross-fitted accuracy / log-loss, the prior's baseline.
    source
        What the votes came from (study slug or file).
    """

    base: dict[str, Any]
    crossfit: CrossFit
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    created: str = ""

    @property
    def version(self) -> str:
        return self.crossfit.version

    @property
    def kind(self) -> str:
        return self.crossfit.full.kind

    def base_scorer(self) -> obj_base.Scorer:
        return build_scorer(self.base)

    def crossfit_scorer(self, base: obj_base.Scorer | None = None) -> CrossFitScorer:
        """The tie-breaking scorer: each pair judged by a head that never saw its votes."""
        return CrossFitScorer(base if base is not None else self.base_scorer(), self.crossfit)

    def full_scorer(self, base: obj_base.Scorer | None = None) -> HeadScorer:
        """The head fitted on every vote (for stimuli outside the study, e.g. ``panelrank score``)."""
        return HeadScorer(base if base is not None else self.base_scorer(), self.crossfit.full)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "kind": self.kind,
            "base": self.base,
            "source": self.source,
            "created": self.created,
            "report": self.report,
            "full": self.crossfit.full.to_dict(),
            "folds": [h.to_dict() for h in self.crossfit.heads],
            "fold_of_pair": [[a, b, k] for (a, b), k in sorted(self.crossfit.fold_of_pair.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerModel:
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a panelrank scorer model (format {data.get('format')!r}, "
                             f"expected {MODEL_FORMAT!r}); write one with `panelrank fit-scorer`")
        crossfit = CrossFit(
            heads=tuple(Head.from_dict(h) for h in data["folds"]),
            fold_of_pair={obj_base.pair_key(str(a), str(b)): int(k) for a, b, k in data["fold_of_pair"]},
            full=Head.from_dict(data["full"]),
        )
        model = cls(normalise_scorer_config(data["base"]), crossfit, dict(data.get("report") or {}),
                    str(data.get("source") or ""), str(data.get("created") or ""))
        if data.get("version") not in (None, model.version):
            raise ValueError("scorer model was edited: its version does not match its heads")
        return model


def save_scorer_model(model: ScorerModel, path: str | Path) -> Path:
    """Write ``model`` as JSON (to a temporary name first, then renamed)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(json.dumps(model.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load_scorer_model(path: str | Path) -> ScorerModel:
    """Read a file written by :func:`save_scorer_model`."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such scorer model file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not a JSON scorer model: {exc}") from exc
    try:
        return ScorerModel.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{p}: malformed scorer model ({exc})") from exc


def read_stimuli_csv(path: str | Path) -> pd.DataFrame:
    """``content, condition, path`` rows; relative paths resolve against the CSV's folder."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such stimuli file")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in STIMULI_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing} (need content, condition, path)")
    df = df.loc[:, list(STIMULI_COLUMNS)].copy()
    df["path"] = [str(q if Path(q).is_absolute() else (p.parent / q).resolve()) for q in df["path"]]
    return stimuli_frame(df)


def read_s_obj_csv(path: str | Path) -> dict[str, float]:
    """``condition, s_obj`` (as ``challenge-score`` writes ``s_obj.csv``) → ``{condition: S_obj}``."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such S_obj file")
    df = pd.read_csv(p, dtype={"condition": str})
    missing = [c for c in ("condition", "s_obj") if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing} (need condition, s_obj)")
    values = pd.to_numeric(df["s_obj"], errors="coerce")
    bad = df.loc[values.isna(), "condition"].tolist()
    if bad:
        raise ValueError(f"{p}: S_obj missing or not a number for condition(s) {bad}")
    return dict(zip(df["condition"].astype(str), values.astype(float), strict=True))


def _metadata_columns(stim: pd.DataFrame) -> set[str]:
    aux = {f"aux_{k}" for k in range(1, obj_base.N_AUX + 1)}
    return {"path", "sha256", "cached", "error", *aux}


def stimulus_features(
    scorer: obj_base.Scorer,
    stimuli: pd.DataFrame,
    *,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Score every stimulus (cached) and attach ``content, condition``.

    Returns
    -------
    frame
        ``content, condition`` + the :func:`score_stimuli` columns, one row per stimulus.
    feature_names
        The scorer's numeric feature columns.
    """
    frame = stimuli_frame(stimuli)
    scored = score_stimuli(scorer, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
    merged = frame.merge(scored, on="path", how="left")
    meta = _metadata_columns(scored)
    names = [c for c in scored.columns if c not in meta and pd.api.types.is_numeric_dtype(scored[c])
             and not pd.api.types.is_bool_dtype(scored[c])]
    return merged, names


@contextlib.contextmanager
def open_cache(directory: str | Path | None) -> Iterator[ScoreCache]:
    """A :class:`ScoreCache` in ``directory``, or in a temporary one removed afterwards."""
    if directory is not None:
        with ScoreCache(directory) as cache:
            yield cache
        return
    with tempfile.TemporaryDirectory(prefix="panelrank-scores-") as tmp, ScoreCache(tmp) as cache:
        yield cache


def _pairwise_votes(votes: pd.DataFrame, screen: bool) -> pd.DataFrame:
    df = frames.validate(votes)
    if frames.detect_kind(df) != "pairwise":
        raise ValueError("fitting a scorer head needs pairwise votes (cond_a, cond_b, pref)")
    if screen:
        sr = screening.screen(df)
        df = sr.kept_votes(df)
        if len(df) == 0:
            raise ValueError("screening dropped every rater; use --no-screening to fit on everyone")
    return screening.main_votes(df)


def fit_scorer_model(
    votes: pd.DataFrame,
    stimuli: pd.DataFrame,
    base: str | Mapping[str, Any] = "handcrafted",
    *,
    kind: str = "logistic",
    n_folds: int = 5,
    l2: float = 1e-3,
    seed: int = 0,
    screen: bool = True,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
    source: str = "",
) -> ScorerModel:
    """Features per stimulus (cached) → joined with the votes → cross-fitted Siamese heads.

    The report holds the full head's held-out accuracy / log-loss (20 % of the votes held
    out), the **cross-fitted** accuracy / log-loss (each vote predicted by the head of its
    pair's fold, i.e. a head that never saw a vote on that pair: the honest figure for a
    tie-breaker) and, for a feature scorer with a prior, the uncalibrated prior's
    accuracy on the same votes.
    """
    if kind == "mlp":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise ValueError("--kind mlp needs torch, which is not installed "
                             "(pip install torch==2.13.0, or use --kind logistic)")
    elif kind != "logistic":
        raise ValueError(f"unknown head kind {kind!r} (logistic or mlp)")
    cfg = normalise_scorer_config(base)
    scorer = build_scorer(cfg)
    main = _pairwise_votes(votes, screen)
    stim, names = stimulus_features(scorer, stimuli, cache=cache, workers=workers, progress=progress)
    if not names:
        raise ValueError(f"scorer {cfg['name']!r} reports no numeric features to fit a head on")
    feats = stim.loc[:, ["content", "condition", *names]]
    tv = join_votes_features(main.astype({"content": str, "cond_a": str, "cond_b": str}), feats)
    n = len(tv.prefs)
    if n < 10:
        raise ValueError(f"only {n} vote(s) have features for both stimuli; need at least 10 to fit a head")
    cf = cross_fit_heads(tv.features_a, tv.features_b, tv.prefs, tv.cond_a, tv.cond_b, n_folds=n_folds,
                         seed=seed, kind=kind, l2=l2, feature_names=names)
    # Out-of-fold: each vote predicted by the head that never saw its condition pair.
    p_oof = np.empty(n)
    fold_heads = [cf.head_for(str(a), str(b)) for a, b in zip(tv.cond_a, tv.cond_b, strict=True)]
    for head in {id(h): h for h in fold_heads}.values():
        rows = np.array([h is head for h in fold_heads])
        p_oof[rows] = head.predict(tv.features_a[rows], tv.features_b[rows])
    oof = head_metrics(p_oof, tv.prefs)
    full = cf.full.report
    rep: dict[str, Any] = {
        "kind": kind, "n_votes": n, "n_votes_dropped": int(tv.n_dropped), "n_features": len(names),
        "n_stimuli": len(stim), "n_condition_pairs": len(cf.fold_of_pair), "n_folds": len(cf.heads),
        "l2": l2, "seed": seed, "screening": screen,
        "heldout_accuracy": full.get("heldout_accuracy"), "heldout_log_loss": full.get("heldout_log_loss"),
        "n_heldout": full.get("n_heldout"),
        "crossfit_accuracy": oof["accuracy"], "crossfit_log_loss": oof["log_loss"],
        "train_accuracy": full.get("train_accuracy"), "train_log_loss": full.get("train_log_loss"),
    }
    if hasattr(scorer, "compare_features") and not getattr(scorer, "calibrated", False):
        aux_cols = [f"aux_{k}" for k in range(1, obj_base.N_AUX + 1)]
        by_cell = {(r["content"], r["condition"]): r for r in stim.to_dict("records")}
        p_prior = []
        for c, a, b in zip(tv.content, tv.cond_a, tv.cond_b, strict=True):
            ra, rb = by_cell[(c, a)], by_cell[(c, b)]
            p_prior.append(scorer.compare_features(  # type: ignore[attr-defined]
                {k: ra[k] for k in names}, {k: rb[k] for k in names},
                tuple(ra[k] for k in aux_cols), tuple(rb[k] for k in aux_cols)).p)
        prior = head_metrics(np.asarray(p_prior), tv.prefs)
        rep.update(prior_accuracy=prior["accuracy"], prior_log_loss=prior["log_loss"])
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return ScorerModel(base=cfg, crossfit=cf, report=rep, source=source, created=created)


def resolve_scorer(spec: str | Mapping[str, Any], options: Mapping[str, Any] | None = None
                   ) -> tuple[obj_base.Scorer, ScorerModel | None]:
    """A scorer name / ``{name, options}`` / model file → (scorer, model or None).

    ``options`` are merged over the configuration's own (a model file takes none: its
    base scorer is fixed by the fit). For a model file the scorer is the full head.
    """
    if is_model_file(spec):
        if options:
            raise ValueError("scorer options cannot be combined with a fitted model file "
                             "(its base scorer is fixed by the fit)")
        model = load_scorer_model(spec)  # type: ignore[arg-type]
        return model.full_scorer(), model
    cfg = normalise_scorer_config(spec)  # type: ignore[arg-type]
    cfg["options"].update(options or {})
    return build_scorer(cfg), None


def build_tiebreaker(
    spec: str | Mapping[str, Any] | None,
    *,
    stimuli: pd.DataFrame | None,
    s_obj: Mapping[str, float] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> TieBreaker:
    """The tie-breaker for :func:`analysis.report.analyze` from the CLI's inputs.

    * ``spec`` a scorer name or ``{name, options}``: mean p_sym against the tie group;
    * ``spec`` a model file from ``fit-scorer``: the same with the cross-fitted heads;
    * ``s_obj`` given: the conditions' S_obj (the scorer, if any, only names it).

    Every stimulus is scored up front (with a progress bar, in ``workers`` processes,
    through ``cache``), so the report's objective score of every condition costs no
    more decoding.

    Raises
    ------
    ValueError
        A scorer-based tie-breaker without stimulus paths, and any scorer problem.
    """
    if spec is None and s_obj is None:
        raise ValueError("give a tie-breaker: a scorer name, a fitted model file, or S_obj values")
    if s_obj is not None:
        scorer = None
        if spec is not None:
            scorer, _ = resolve_scorer(spec, options)
        return make_tiebreaker(scorer, s_obj=s_obj)
    assert spec is not None
    if stimuli is None or len(stimuli) == 0:
        raise ValueError("--tiebreak needs the stimulus paths: give --stimuli stimuli.csv (columns content, "
                         "condition, path), or --s-obj s_obj.csv to break ties by S_obj")
    scorer, model = resolve_scorer(spec, options)
    frame = stimuli_frame(stimuli)
    missing = [p for p in frame["path"] if not Path(p).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} stimulus file(s) not found, e.g. {missing[0]}")
    if model is not None:
        base = model.base_scorer()
        if cache is not None:
            # Features once per stimulus (in parallel); each fold head then reads them from the cache.
            score_stimuli(base, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
            base = CachedScorer(base, cache)
        return make_tiebreaker(model.crossfit_scorer(base), frame)
    if cache is not None and hasattr(scorer, "compare_features"):
        score_stimuli(scorer, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
    return make_tiebreaker(scorer, frame, cache=cache, workers=workers)


def scorer_model_name(source: str, model: ScorerModel) -> str:
    """File name for a model: ``<source>.<kind>.<version>.json`` (source made file-safe)."""
    return f"{safe_name(source or 'scorer')}.{model.kind}.{model.version}.json"


def safe_name(text: str) -> str:
    """``text`` with anything but ``A-Za-z0-9_.-`` replaced by ``_`` (for file names)."""
    out = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(text)).strip("._")
    if not out:
        out = "x" + hashlib.sha256(str(text).encode()).hexdigest()[:8]
    return out


# ========================================================================================
# analyze / simulate
# ========================================================================================


def _analysis_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``analyze`` and ``analyze-study``."""
    options = [
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Directory for scores.csv, ranking.csv, raters.csv and report.html."),
        click.option("--ties", type=click.Choice(bradley_terry.TIE_MODELS), default="davidson", show_default=True,
                     help="How 'no preference' votes enter the Bradley–Terry fit."),
        click.option("--graded", is_flag=True, help="Count a strong preference as two wins (pairwise)."),
        click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Rater-bootstrap rounds (0: none)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap."),
        click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
                     show_default=True, help="1 − confidence level; family-wise level of the tests."),
        click.option("--no-screening", is_flag=True, help="Keep every rater (no screening rule applied)."),
        click.option("--reference", default=None, help="Hidden-reference condition of an ACR-HR study."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def tiebreak_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Tie-break options shared by ``analyze`` and ``analyze-study``."""
    options = [
        click.option("--tiebreak", default=None, metavar="NAME|MODEL.json",
                     help="Order conditions inside a tie group by this scorer's mean p_sym against the group "
                          "(a registered scorer, or a model file written by `panelrank fit-scorer`)."),
        click.option("--s-obj", "s_obj_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="CSV condition,s_obj (as `challenge-score` writes): break ties by S_obj instead."),
        click.option("--scorer-option", "scorer_options", multiple=True, metavar="KEY=VALUE",
                     help="Option of the --tiebreak scorer (repeatable), e.g. frames=16."),
        click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Score cache directory (results keyed by file sha256, scorer and version; default: "
                          "none for analyze, <instance>/score-cache for analyze-study)."),
        click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Processes scoring stimuli in parallel."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run_analysis(
    df: pd.DataFrame,
    out_dir: Path,
    *,
    published: pd.DataFrame | None = None,
    tiebreak: str | Mapping[str, Any] | None = None,
    stimuli: pd.DataFrame | None = None,
    s_obj_path: Path | None = None,
    scorer_options: Sequence[str] | Mapping[str, Any] = (),
    cache_dir: Path | None = None,
    workers: int = 1,
    ties: str = "davidson",
    graded: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    no_screening: bool = False,
    reference: str | None = None,
) -> None:
    """The body of ``analyze`` / ``analyze-study``: analyse, write the report, echo a summary."""
    if bootstrap == 1:
        raise click.BadParameter("use 0 (no bootstrap) or at least 2 rounds", param_hint="--bootstrap")
    rules = screening.ScreeningRules.none() if no_screening else None
    with contextlib.ExitStack() as stack:
        tb = None
        try:
            options = parse_options(scorer_options)
            if options and tiebreak is None:
                raise ValueError("--scorer-option needs --tiebreak")
            if tiebreak is not None or s_obj_path is not None:
                s_obj = read_s_obj_csv(s_obj_path) if s_obj_path is not None else None
                cache = None
                if s_obj is None:
                    cache = stack.enter_context(open_cache(cache_dir))
                tb = build_tiebreaker(tiebreak, stimuli=stimuli, s_obj=s_obj, options=options, cache=cache,
                                      workers=workers, progress=text_progress(label="scoring stimuli"))
        except SCORER_ERRORS as exc:
            raise _fail(exc) from exc
        try:
            result = report.analyze(df, ties=ties, bootstrap=bootstrap, seed=seed, screening_rules=rules,
                                    graded=graded, alpha=alpha, reference=reference, published=published,
                                    tiebreak=tb)
        except (frames.FrameError, bradley_terry.ComparisonGraphError, *SCORER_ERRORS) as exc:
            raise _fail(exc) from exc
    try:
        report.write_report(result, out_dir)
    except OSError as exc:
        raise _fail(exc) from exc
    click.echo(report.summary(result))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    kept = result.counts.get("raters_kept")
    if kept is not None:
        click.echo(f"raters kept {kept} of {result.counts['raters']}; votes fitted {result.counts['votes_fitted']}")
    if result.objective is not None:
        click.echo(result.objective.summary_line())
    click.echo(f"wrote {', '.join(report.REPORT_FILES)} to {out_dir}")


@click.command("analyze")
@click.argument("votes", type=click.Path(dir_okay=False, path_type=Path))
@_analysis_options
@click.option("--stimuli", "stimuli_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV content,condition,path of the stimulus files (needed by --tiebreak NAME).")
@tiebreak_options
def analyze_command(votes: Path, out_dir: Path, ties: str, graded: bool, bootstrap: int, seed: int, alpha: float,
                    no_screening: bool, reference: str | None, stimuli_path: Path | None, tiebreak: str | None,
                    s_obj_path: Path | None, scorer_options: tuple[str, ...], cache_dir: Path | None,
                    workers: int) -> None:
    """Rank the conditions of VOTES and write a report directory.

    VOTES is a pairwise or ratings vote file (.csv or .parquet, as `panelrank export`
    writes), a pair table (cond_a, cond_b with counts or a mean vote), or an NTIRE VQE
    result file (.txt).

    With --tiebreak (or --s-obj), conditions the votes cannot separate are ordered by
    an objective score; ranking.csv says `tiebreak:<name>@<version>` for the pairs the
    scorer separated, and report.html shows the scorer's agreement with the votes.
    """
    if bootstrap == 1:
        raise click.BadParameter("use 0 (no bootstrap) or at least 2 rounds", param_hint="--bootstrap")
    try:
        df, published = report.read_input(votes)
        stimuli = read_stimuli_csv(stimuli_path) if stimuli_path is not None else None
    except (frames.FrameError, ValueError) as exc:
        raise _fail(exc) from exc
    run_analysis(df, out_dir, published=published, tiebreak=tiebreak, stimuli=stimuli, s_obj_path=s_obj_path,
                 scorer_options=scorer_options, cache_dir=cache_dir, workers=workers, ties=ties, graded=graded,
                 bootstrap=bootstrap, seed=seed, alpha=alpha, no_screening=no_screening, reference=reference)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@click.command("simulate")
@click.option("--conditions", "n_conditions", type=click.IntRange(min=2), default=12, show_default=True)
@click.option("--contents", "n_contents", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--votes", "n_votes", type=click.IntRange(min=1), default=350_000, show_default=True,
              help="Regular trials (repeats and gold come on top).")
@click.option("--raters", "n_raters", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--scale", type=click.Choice(list(frames.SCALES)), default="pc5", show_default=True,
              help="Pairwise scales simulate side-by-side votes, rating scales single-stimulus scores.")
@click.option("--tie-rate", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Share of 'no preference' between equal conditions (pairwise; default 0.2, 0 on 2afc).")
@click.option("--rater-noise", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Sd of each rater's own view of the scores (pairwise).")
@click.option("--spammers", "spammer_fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of raters answering at random.")
@click.option("--repeats", "repeats_per_rater", type=click.IntRange(min=0), default=0, show_default=True,
              help="Consistency repeats per rater.")
@click.option("--gold", "gold_per_rater", type=click.IntRange(min=0), default=0, show_default=True,
              help="Gold trials per rater.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Votes file (.csv or .parquet).")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of the true condition scores.")
def simulate_command(n_conditions: int, n_contents: int, n_votes: int, n_raters: int, scale: str,
                     tie_rate: float | None, rater_noise: float, spammer_fraction: float, repeats_per_rater: int,
                     gold_per_rater: int, seed: int, out: Path, truth: Path | None) -> None:
    """Write a synthetic study with a known truth (valid tidy votes)."""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("must end in .csv or .parquet", param_hint="--out")
    common = {"spammer_fraction": spammer_fraction, "repeats_per_rater": repeats_per_rater,
              "gold_per_rater": gold_per_rater, "seed": seed}
    try:
        if frames.SCALES[scale].kind == "pairwise":
            if tie_rate is None:
                tie_rate = 0.0 if not frames.SCALES[scale].allows_zero else 0.2
            sim = simulate.simulate_pairwise(n_conditions, n_contents, n_votes, n_raters, scale=scale,
                                             tie_rate=tie_rate, rater_noise=rater_noise, **common)
        else:
            sim = simulate.simulate_ratings(n_conditions, n_contents, n_raters, scale=scale, n_votes=n_votes,
                                            **common)
    except ValueError as exc:
        raise _fail(exc) from exc
    for path in (out, truth):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    frames.write_votes(sim.votes, out)
    if truth is not None:
        _atomic_csv(sim.truth, truth)
    kind = frames.SCALES[scale].kind
    click.echo(f"wrote {len(sim.votes):,} {kind} rows ({n_raters} raters, {n_conditions} conditions) to {out}"
               + (f"; truth to {truth}" if truth is not None else ""))




# ========================================================================================
# score / challenge-score
# ========================================================================================

_scorer_option = click.option(
    "--scorer", "scorer_spec", default="handcrafted", show_default=True, metavar="NAME|MODEL.json",
    help="A registered scorer (see docs/scorers.md), or a model file written by `panelrank fit-scorer`.")
_option_option = click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                              help="Scorer option (repeatable; values read as JSON when they parse).")


def _scorer_for_cli(spec: str, options: Sequence[str]) -> obj_base.Scorer:
    try:
        scorer, _ = resolve_scorer(spec, parse_options(options))
    except SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    return scorer


def pair_json(scorer: obj_base.Scorer, path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """One pair, both orders: ``p`` = p_sym(A, B), ``p_ab``, ``p_ba``, the averaged aux of A and B."""
    ab = scorer.compare(path_a, path_b)
    ba = scorer.compare(path_b, path_a)
    sym = obj_base.combine_orders(ab, ba)
    return {
        "a": str(path_a), "b": str(path_b), "scorer": scorer.name, "version": scorer.version,
        "calibrated": getattr(scorer, "calibrated", None),
        "p": sym.p, "p_ab": ab.p, "p_ba": ba.p, "aux_a": list(sym.aux_a), "aux_b": list(sym.aux_b),
    }


@click.command("score")
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_scorer_option
@_option_option
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score cache directory (default: none).")
def score_command(a: Path, b: Path, scorer_spec: str, options: tuple[str, ...], cache_dir: Path | None) -> None:
    """Print the JSON answer of a scorer for one pair of stimuli A, B.

    `p` is order-independent: p_sym(A, B) = (p(A, B) + 1 − p(B, A)) / 2, so
    `score A B` and `score B A` sum to 1. `aux_a`/`aux_b` are the 11 auxiliary scores
    (a4, noise, rises as quality falls).
    """
    scorer = _scorer_for_cli(scorer_spec, options)
    try:
        with contextlib.ExitStack() as stack:
            if cache_dir is not None:
                scorer = CachedScorer(scorer, stack.enter_context(ScoreCache(cache_dir)))
            answer = pair_json(scorer, a, b)
    except SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(json.dumps(answer, indent=2))


#: Columns of the ``challenge-score`` inputs.
REAL_INPUT_COLUMNS = ("condition", "video", "output_path", "input_path")
SYNTH_INPUT_COLUMNS = ("condition", "video", "output_path", "target_path")


def read_challenge_input(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A ``challenge-score`` input CSV; relative file paths resolve against its folder."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing} (need {', '.join(columns)})")
    df = df.loc[:, list(columns)].copy()
    problems = []
    for col in columns[2:]:
        df[col] = [str(q if Path(q).is_absolute() else (p.parent / q).resolve()) for q in df[col]]
        absent = [q for q in df[col] if not Path(q).is_file()]
        if absent:
            problems.append(f"{len(absent)} {col} file(s) not found, e.g. {absent[0]}")
    dup = df.duplicated(["condition", "video"])
    if dup.any():
        problems.append(f"{int(dup.sum())} duplicate (condition, video) row(s)")
    empty = (df[["condition", "video"]] == "").any(axis=1)
    if empty.any():
        problems.append(f"{int(empty.sum())} row(s) with an empty condition or video")
    if problems:
        raise ValueError(f"{p}: " + "; ".join(problems))
    return df


def challenge_tables(
    scorer: obj_base.Scorer | None,
    real: pd.DataFrame | None,
    synth: pd.DataFrame | None,
    *,
    symmetric: bool = True,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """Per-condition CSV frames (``video_i, m_1..m_12`` and ``video_i, rmse``) and the S table.

    Returns ``(real_by_condition, synth_by_condition, s_values)``; ``s_values`` has
    ``condition, s_real, s_synth, s_obj, n_real, n_synth`` (NaN where a set is absent).
    """
    from analysis.objective import challenge

    real_frames: dict[str, pd.DataFrame] = {}
    synth_frames: dict[str, pd.DataFrame] = {}
    if real is not None and len(real):
        assert scorer is not None
        rows = challenge.real_rows(scorer, list(zip(real["video"], real["output_path"], real["input_path"],
                                                    strict=True)),
                                   symmetric=symmetric, cache=cache, workers=workers, progress=progress)
        errors = real.assign(m_1=rows["m_1"].to_numpy())
        if errors["m_1"].isna().any():
            bad = errors.loc[errors["m_1"].isna(), ["condition", "video"]].head(3).values.tolist()
            raise obj_base.ScorerError(f"could not score real video(s) {bad}")
        for cond, idx in real.groupby("condition", sort=True).groups.items():
            real_frames[str(cond)] = rows.loc[idx].reset_index(drop=True)
    if synth is not None and len(synth):
        for cond, part in synth.groupby("condition", sort=True):
            synth_frames[str(cond)] = challenge.synth_rows(
                zip(part["video"], part["output_path"], part["target_path"], strict=True))
    out = []
    for cond in sorted(set(real_frames) | set(synth_frames)):
        r, s = real_frames.get(cond), synth_frames.get(cond)
        sr = challenge.s_real(r["m_1"], r[list(challenge.M_COLUMNS[1:])]) if r is not None else math.nan
        ss = challenge.s_synth(s["rmse"]) if s is not None else math.nan
        out.append({"condition": cond, "s_real": sr, "s_synth": ss, "s_obj": challenge.s_obj(sr, ss),
                    "n_real": 0 if r is None else len(r), "n_synth": 0 if s is None else len(s)})
    cols = ["condition", "s_real", "s_synth", "s_obj", "n_real", "n_synth"]
    return real_frames, synth_frames, pd.DataFrame(out, columns=cols)


@click.command("challenge-score")
@click.option("--real", "real_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV condition,video,output_path,input_path: each condition's output ŷ_i on real input x_i.")
@click.option("--synth", "synth_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV condition,video,output_path,target_path: outputs on synthetic data and their targets.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for real/<condition>.csv, synth/<condition>.csv and s_obj.csv.")
@_scorer_option
@_option_option
@click.option("--asymmetric", is_flag=True,
              help="m_1 = the single call p(ŷ_i, x_i) of the organisers' script (default: p_sym).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score cache directory (default: none).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def challenge_score_command(real_path: Path | None, synth_path: Path | None, out_dir: Path, scorer_spec: str,
                            options: tuple[str, ...], asymmetric: bool, cache_dir: Path | None,
                            workers: int) -> None:
    """Write the challenge's CSV layouts and each condition's S_real, S_synth, S_obj.

    real/<condition>.csv is `video_i, m_1..m_12` (m_1 = p(ŷ_i, x_i), m_2..m_12 = a_1..a_11,
    a_4 raw); synth/<condition>.csv is `video_i, rmse` (per-frame RMSE on (x−128)/128,
    mean over frames); s_obj.csv is `condition, s_real, s_synth, s_obj, n_real, n_synth`
    (PROTOCOL.md §4), ready for `panelrank analyze --s-obj`.
    """
    if real_path is None and synth_path is None:
        raise click.UsageError("give --real, --synth, or both")
    try:
        real = read_challenge_input(real_path, REAL_INPUT_COLUMNS) if real_path is not None else None
        synth = read_challenge_input(synth_path, SYNTH_INPUT_COLUMNS) if synth_path is not None else None
    except ValueError as exc:
        raise _fail(exc) from exc
    scorer = _scorer_for_cli(scorer_spec, options) if real is not None else None
    from analysis.objective import challenge

    try:
        with contextlib.ExitStack() as stack:
            cache = stack.enter_context(ScoreCache(cache_dir)) if cache_dir is not None else None
            real_frames, synth_frames, s_values = challenge_tables(
                scorer, real, synth, symmetric=not asymmetric, cache=cache, workers=workers,
                progress=text_progress(label="scoring real pairs"))
    except SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    names = {c: safe_name(c) for c in s_values["condition"]}
    if len(set(names.values())) < len(names):
        raise click.ClickException("condition names collide once made file-safe; rename them")
    try:
        for sub, found, write in (("real", real_frames, challenge.write_real_csv),
                                  ("synth", synth_frames, challenge.write_synth_csv)):
            if found:
                (out_dir / sub).mkdir(parents=True, exist_ok=True)
            for cond, frame in found.items():
                write(frame, out_dir / sub / f"{names[cond]}.csv")
        _atomic_csv(s_values, out_dir / "s_obj.csv")
    except OSError as exc:
        raise _fail(exc) from exc
    for r in s_values.itertuples(index=False):
        click.echo(f"{r.condition:<20} S_real {r.s_real:.4f}  S_synth {r.s_synth:.4f}  S_obj {r.s_obj:.4f}  "
                   f"({r.n_real} real, {r.n_synth} synthetic)")
    if scorer is not None and not getattr(scorer, "calibrated", True):
        click.echo(f"note: {scorer.name} {scorer.version} is uncalibrated (prior weights), so S_real is too",
                   err=True)
    click.echo(f"wrote {len(real_frames)} real and {len(synth_frames)} synthetic CSV(s) and s_obj.csv to {out_dir}")


#: Commands for the ``panelrank`` group (registered by study_app.cli).
COMMANDS = [analyze_command, simulate_command]
#: File-based objective-scorer commands (registered by study_app.cli through study_app.scoring).
SCORER_COMMANDS = [score_command, challenge_score_command]
