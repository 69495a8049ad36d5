"""Objective-scorer commands: on files (``score``, ``challenge-score``) and on a study in the
database (``score-study``, ``fit-scorer``, ``analyze-study``).

The work is in :mod:`analysis.objective` (scorers, cache, challenge score, fitted models),
:mod:`study_app.scoring` (what a study holds, scoring it) and :mod:`analysis.pipeline`.
Results are cached by (file sha256, scorer name, scorer version) in
``<instance>/score-cache`` unless ``--cache`` says otherwise, so ``score-study``,
``fit-scorer`` and ``analyze-study --tiebreak`` share the work.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask.cli import with_appcontext

from analysis import objective
from study_app.cli.analysis import analysis_options, analyze_and_echo, options_from, tiebreak_options
from study_app.cli.commands import require_schema

if TYPE_CHECKING:
    import pandas as pd

#: Scorer used when neither the command line nor the study's manifest names one.
DEFAULT_SCORER = "handcrafted"


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


# --------------------------------------------------------------------------- on files

_scorer_option = click.option(
    "--scorer", "scorer_spec", default="handcrafted", show_default=True, metavar="NAME|MODEL.json",
    help="A registered scorer (see docs/scorers.md), or a model file written by `panelrank fit-scorer`.")
_option_option = click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                              help="Scorer option (repeatable; values read as JSON when they parse).")


def _scorer_for_cli(spec: str, options: Sequence[str]) -> objective.Scorer:
    try:
        return objective.load_scorer(spec, options)
    except objective.SCORER_ERRORS as exc:
        raise _fail(exc) from exc


@click.command("score", short_help="Print a scorer's JSON answer for one pair of clips.")
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
                scorer = objective.CachedScorer(scorer, stack.enter_context(objective.ScoreCache(cache_dir)))
            answer = objective.pair_json(scorer, a, b)
    except objective.SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(json.dumps(answer, indent=2))


@click.command("challenge-score", short_help="Write the challenge CSVs and each S_real, S_synth, S_obj.")
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
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes scoring videos in parallel.")
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
        real = (objective.read_challenge_input(real_path, objective.REAL_INPUT_COLUMNS)
                if real_path is not None else None)
        synth = (objective.read_challenge_input(synth_path, objective.SYNTH_INPUT_COLUMNS)
                 if synth_path is not None else None)
    except ValueError as exc:
        raise _fail(exc) from exc
    scorer = _scorer_for_cli(scorer_spec, options) if real is not None else None
    from analysis._files import write_csv

    try:
        with contextlib.ExitStack() as stack:
            cache = stack.enter_context(objective.ScoreCache(cache_dir)) if cache_dir is not None else None
            real_frames, synth_frames, s_values = objective.challenge_tables(
                scorer, real, synth, symmetric=not asymmetric, cache=cache, workers=workers,
                progress=objective.text_progress(label="scoring real pairs"))
    except objective.SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    names = {c: objective.safe_name(c) for c in s_values["condition"]}
    if len(set(names.values())) < len(names):
        raise click.ClickException("condition names collide once made file-safe; rename them")
    try:
        for sub, found, write in (("real", real_frames, objective.write_real_csv),
                                  ("synth", synth_frames, objective.write_synth_csv)):
            if found:
                (out_dir / sub).mkdir(parents=True, exist_ok=True)
            for cond, frame in found.items():
                write(frame, out_dir / sub / f"{names[cond]}.csv")
        write_csv(s_values, out_dir / "s_obj.csv")
    except OSError as exc:
        raise _fail(exc) from exc
    for r in s_values.itertuples(index=False):
        click.echo(f"{r.condition:<20} S_real {r.s_real:.4f}  S_synth {r.s_synth:.4f}  S_obj {r.s_obj:.4f}  "
                   f"({r.n_real} real, {r.n_synth} synthetic)")
    if scorer is not None and not getattr(scorer, "calibrated", True):
        click.echo(f"note: {scorer.name} {scorer.version} is uncalibrated (prior weights), so S_real is too",
                   err=True)
    click.echo(f"wrote {len(real_frames)} real and {len(synth_frames)} synthetic CSV(s) and s_obj.csv to {out_dir}")


# --------------------------------------------------------------------------- on a study


def _load_study(slug: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any] | None]:
    """(votes, stimuli, needed pairs, manifest scorer) of a study, read in one transaction."""
    from study_app import db
    from study_app.export import votes_frame
    from study_app.scoring import study_pairs, study_scorer, study_stimuli
    from study_app.studies import get_study

    require_schema()
    with db.transaction() as session:
        study = get_study(session, slug)
        if study is None:
            raise click.ClickException(f"no study with slug '{slug}'")
        return votes_frame(session, study), study_stimuli(session, study), study_pairs(session, study), \
            study_scorer(study)


def _scorer_spec(given: str | None, manifest: Mapping[str, Any] | None, options: tuple[str, ...]
                 ) -> tuple[objective.Scorer, objective.ScorerModel | None]:
    spec: str | Mapping[str, Any] = given if given is not None else (manifest or DEFAULT_SCORER)
    try:
        return objective.resolve_scorer(spec, objective.parse_options(options))
    except objective.SCORER_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc


_scorer_opt = click.option("--scorer", "scorer_spec", default=None, metavar="NAME|MODEL.json",
                           help="Scorer name or fitted model file (default: the study manifest's `scorer:`, "
                                f"else {DEFAULT_SCORER}).")
_option_opt = click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                           help="Scorer option (repeatable; values read as JSON when they parse).")
_workers_opt = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Processes scoring stimuli in parallel.")
_cache_opt = click.option("--cache", "cache_path", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Score cache directory (default: <instance>/score-cache).")


@click.command("score-study", short_help="Score every stimulus and pair of a study (cached).")
@click.argument("study")
@_scorer_opt
@_option_opt
@_workers_opt
@_cache_opt
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of every stimulus: content, condition, path, sha256, cached, aux_1..aux_11, features.")
@click.option("--pairs-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of every needed pair: content, cond_a, cond_b, p (p_sym), p_ab, p_ba.")
@with_appcontext
def score_study_command(study: str, scorer_spec: str | None, options: tuple[str, ...], workers: int,
                        cache_path: Path | None, out: Path | None, pairs_out: Path | None) -> None:
    """Score every stimulus and every pair the design of STUDY compares; cache the results.

    Results are keyed by (file sha256, scorer name, version): a rerun scores only what
    changed. Prints how many were scored and how many came from the cache, and the
    mean p_sym of each condition over its pairs.
    """
    from analysis._files import write_csv
    from study_app import scoring

    _, stimuli, pairs, manifest_scorer = _load_study(study)
    scorer, model = _scorer_spec(scorer_spec, manifest_scorer, options)
    try:
        with objective.ScoreCache(cache_path or scoring.default_cache_dir()) as cache:
            result = scoring.score_study(stimuli, pairs, scorer, model=model, cache=cache, workers=workers,
                                         progress=objective.text_progress(label="scoring"))
    except objective.SCORER_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    for line in result.summary_lines():
        click.echo(line)
    if out is not None:
        write_csv(result.stimuli, out)
        click.echo(f"wrote {len(result.stimuli)} stimulus row(s) to {out}")
    if pairs_out is not None:
        write_csv(result.pairs, pairs_out)
        click.echo(f"wrote {len(result.pairs)} pair row(s) to {pairs_out}")


@click.command("fit-scorer", short_help="Train a scorer head on votes, cross-fitted.")
@click.argument("source", metavar="STUDY-or-VOTES")
@click.option("--stimuli", "stimuli_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV content,condition,path of the stimulus files (needed with a votes file).")
@_scorer_opt
@_option_opt
@click.option("--kind", type=click.Choice(["logistic", "mlp"]), default="logistic", show_default=True,
              help="Head: logistic regression on feature differences, or a shared-tower MLP (needs torch).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Folds of condition pairs for cross-fitting.")
@click.option("--l2", type=click.FloatRange(min=0), default=1e-3, show_default=True, help="Ridge penalty.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the held-out split.")
@click.option("--no-screening", is_flag=True, help="Fit on every rater's votes (default: screened raters only).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model file (.json; default <instance>/scorers/<source>.<kind>.<version>.json).")
@_workers_opt
@_cache_opt
@with_appcontext
def fit_scorer_command(source: str, stimuli_path: Path | None, scorer_spec: str | None, options: tuple[str, ...],
                       kind: str, folds: int, l2: float, seed: int, no_screening: bool, out: Path | None,
                       workers: int, cache_path: Path | None) -> None:
    """Train the Siamese head of a feature scorer on the pairwise votes of a study or a votes file.

    STUDY-or-VOTES is a study slug (votes and stimulus paths from the database) or a
    votes file (.csv/.parquet) given with --stimuli. Reports held-out and cross-fitted
    pairwise accuracy and log-loss, and saves a versioned model file whose cross-fitted
    heads `analyze --tiebreak MODEL.json` uses: a condition pair is never tie-broken by
    a head trained on that pair's own votes.
    """
    from analysis import frames
    from study_app import scoring

    if out is not None and out.suffix.lower() != ".json":
        raise click.BadParameter("the model file must end in .json", param_hint="--out")
    if scorer_spec is not None and objective.is_model_file(scorer_spec):
        raise click.BadParameter("give the base scorer's name, not a model file", param_hint="--scorer")
    manifest_scorer = None
    from_file = Path(source).is_file()
    if from_file:
        if stimuli_path is None:
            raise click.UsageError("a votes file needs --stimuli stimuli.csv (columns content, condition, path)")
        try:
            votes = frames.read_votes(source)
            stimuli = objective.read_stimuli_csv(stimuli_path)
        except (frames.FrameError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        label = Path(source).stem
    else:
        if stimuli_path is not None:
            raise click.UsageError("--stimuli is for a votes file; a study's stimuli come from the database")
        if Path(source).suffix.lower() in (".csv", ".parquet"):
            raise click.ClickException(f"{source}: no such votes file")
        votes, stimuli, _, manifest_scorer = _load_study(source)
        label = source
    spec: str | Mapping[str, Any] = scorer_spec if scorer_spec is not None else (manifest_scorer or DEFAULT_SCORER)
    try:
        cfg = objective.normalise_scorer_config(spec)
        cfg["options"].update(objective.parse_options(options))
        with objective.ScoreCache(cache_path or scoring.default_cache_dir()) as cache:
            model = objective.fit_scorer_model(votes, stimuli, cfg, kind=kind, n_folds=folds, l2=l2, seed=seed,
                                               screen=not no_screening, cache=cache, workers=workers,
                                               progress=objective.text_progress(label="scoring stimuli"),
                                               source=label)
    except (frames.FrameError, *objective.SCORER_ERRORS) as exc:
        raise click.ClickException(str(exc)) from exc
    path = out or scoring.models_dir() / objective.scorer_model_name(label, model)
    try:
        objective.save_scorer_model(model, path)
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    r = model.report
    click.echo(f"fitted {kind} head of {model.base['name']} on {r['n_votes']} votes "
               f"({r['n_condition_pairs']} condition pairs, {r['n_folds']} folds) from {label}")
    click.echo(f"  held-out accuracy {_num(r.get('heldout_accuracy'))}, log-loss {_num(r.get('heldout_log_loss'))} "
               f"({r.get('n_heldout') or 0} votes held out)")
    click.echo(f"  cross-fitted accuracy {_num(r['crossfit_accuracy'])}, log-loss {_num(r['crossfit_log_loss'])} "
               "(each vote judged by a head that never saw its condition pair)")
    if r.get("n_votes_dropped"):
        click.echo(f"  note: {r['n_votes_dropped']} vote(s) left out: a stimulus they compare has no features")
    if "prior_accuracy" in r:
        click.echo(f"  prior weights (uncalibrated) accuracy {_num(r['prior_accuracy'])}, "
                   f"log-loss {_num(r['prior_log_loss'])}")
    click.echo(f"wrote model {path} (version {model.version})")
    click.echo(f"use it with: panelrank analyze {source} --stimuli {stimuli_path} --out DIR --tiebreak {path}"
               if from_file else f"use it with: panelrank analyze-study {label} --out DIR --tiebreak {path}")


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{f:.3f}" if math.isfinite(f) else "n/a"


@click.command("analyze-study", short_help="Rank the conditions of a study; write a report.")
@click.argument("study")
@analysis_options
@tiebreak_options
@click.option("--no-tiebreak", is_flag=True, help="Ignore the manifest's scorer: leave ties unresolved.")
@with_appcontext
def analyze_study_command(study: str, out_dir: Path, ties: str, graded: bool, ci: str, bootstrap: int, seed: int,
                          alpha: float, no_screening: bool, reference: str | None, tiebreak: str | None,
                          s_obj_path: Path | None, scorer_options: tuple[str, ...], cache_dir: Path | None,
                          workers: int, no_tiebreak: bool) -> None:
    """Rank the conditions of STUDY from its votes in the database and write a report directory.

    Ties are broken by --tiebreak, else by the manifest's `scorer:` (unless
    --no-tiebreak), with the stimulus paths stored with the study.
    """
    from analysis import pipeline
    from study_app import scoring

    if no_tiebreak and (tiebreak is not None or s_obj_path is not None):
        raise click.UsageError("--no-tiebreak contradicts --tiebreak / --s-obj")
    votes, stimuli, _, manifest_scorer = _load_study(study)
    spec: str | Mapping[str, Any] | None = tiebreak
    if spec is None and s_obj_path is None and not no_tiebreak:
        spec = manifest_scorer
    options = options_from(ties, graded, ci, bootstrap, seed, alpha, no_screening, reference)
    source = pipeline.TiebreakSource(scorer=spec, stimuli=stimuli, s_obj_path=s_obj_path,
                                     scorer_options=scorer_options, cache_dir=cache_dir or scoring.default_cache_dir(),
                                     workers=workers)
    analyze_and_echo(votes, out_dir, options, source)
