"""Objective scoring of a study in the database: ``fit-scorer``, ``score-study``, ``analyze-study``.

The numerics live in :mod:`analysis.objective` and the file-based plumbing in
:mod:`analysis.cli`; this module only reads what a study holds (stimulus paths, the
pairs its design compares, its votes, the ``scorer:`` of its manifest) and hands it on.
:data:`COMMANDS` (these three plus the file-based ``score`` and ``challenge-score``) is
registered on the ``panelrank`` group by :func:`study_app.cli.register`.

Results are cached by (file sha256, scorer name, scorer version) in
``<instance>/score-cache`` unless ``--cache`` says otherwise, so ``score-study``,
``fit-scorer`` and ``analyze-study --tiebreak`` share the work: a rerun scores only
the files that changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import aliased

from analysis import cli as acli
from analysis import frames
from analysis._files import write_csv
from analysis.objective import base as obj_base
from analysis.objective import model as smodel
from analysis.objective.cache import ScoreCache, score_pairs, text_progress
from study_app import db, migrate
from study_app.export import votes_frame
from study_app.models import Condition, Content, Session, Stimulus, Study, Trial
from study_app.studies import get_study

#: Scorer used when neither the command line nor the study's manifest names one.
DEFAULT_SCORER = "handcrafted"
_AUX = [f"aux_{k}" for k in range(1, obj_base.N_AUX + 1)]


# --------------------------------------------------------------------------- DB reads


def default_cache_dir(app: Flask | None = None) -> Path:
    """Default score cache: ``<instance>/score-cache``."""
    return Path((app or current_app).config["INSTANCE_DIR"]) / "score-cache"


def models_dir(app: Flask | None = None) -> Path:
    """Default folder of fitted scorer models: ``<instance>/scorers``."""
    return Path((app or current_app).config["INSTANCE_DIR"]) / "scorers"


def study_stimuli(session: DBSession, study: Study) -> pd.DataFrame:
    """``content, condition, path`` of every stimulus of ``study``."""
    rows = session.execute(
        select(Content.key, Condition.key, Stimulus.path)
        .join(Content, Stimulus.content_id == Content.id)
        .join(Condition, Stimulus.condition_id == Condition.id)
        .where(Stimulus.study_id == study.id)
        .order_by(Content.position, Condition.position)
    ).all()
    return pd.DataFrame([tuple(map(str, r)) for r in rows], columns=["content", "condition", "path"])


def study_pairs(session: DBSession, study: Study) -> pd.DataFrame:
    """The (content, condition pair)s the study's plan compares, each once, ``cond_a < cond_b``."""
    sa, sb = aliased(Stimulus), aliased(Stimulus)
    ca, cb = aliased(Condition), aliased(Condition)
    rows = session.execute(
        select(Content.key, ca.key, cb.key)
        .select_from(Trial)
        .join(Session, Trial.session_id == Session.id)
        .join(sa, Trial.stimulus_a_id == sa.id)
        .join(sb, Trial.stimulus_b_id == sb.id)
        .join(Content, sa.content_id == Content.id)
        .join(ca, sa.condition_id == ca.id)
        .join(cb, sb.condition_id == cb.id)
        .where(Session.study_id == study.id)
        .distinct()
    ).all()
    keys = sorted({(str(c), *obj_base.pair_key(str(a), str(b))) for c, a, b in rows})
    return pd.DataFrame(keys, columns=["content", "cond_a", "cond_b"])


def study_scorer(study: Study) -> dict[str, Any] | None:
    """The manifest's ``scorer:`` (``{name, options}``) stored with the study, or None."""
    found = (study.manifest or {}).get("scorer")
    return dict(found) if isinstance(found, Mapping) else None


# --------------------------------------------------------------------------- scoring


@dataclass
class StudyScores:
    """What ``score-study`` computed.

    Attributes
    ----------
    stimuli
        One row per stimulus: ``content, condition, path, sha256, cached, error``, the
        aux scores ``aux_1..aux_11`` and the scorer's features.
    pairs
        One row per needed pair: ``content, cond_a, cond_b, p`` (p_sym), ``p_ab, p_ba``.
    conditions
        Per condition: ``condition, n_stimuli, mean_p_sym`` (over its needed pairs, from
        its side), ``a1_overall, a4_noise`` (means).
    counts
        ``stimuli, stimuli_scored, stimuli_cached, pairs, pairs_scored, pairs_cached`` and
        ``pairs_from_features`` (True when pairs cost nothing beyond the stimuli).
    """

    scorer: str
    stimuli: pd.DataFrame
    pairs: pd.DataFrame
    conditions: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        c = self.counts
        lines = [f"scorer {self.scorer}",
                 f"stimuli: {c['stimuli']} ({c['stimuli_scored']} scored, {c['stimuli_cached']} cached)"]
        if c["pairs_from_features"]:
            lines.append(f"pairs: {c['pairs']} needed by the design (computed from the stimulus results)")
        else:
            lines.append(f"pairs: {c['pairs']} needed by the design; ordered calls: "
                         f"{c['pairs_scored']} scored, {c['pairs_cached']} cached")
        if len(self.conditions):
            lines.append(f"{'condition':<20} {'stimuli':>7} {'mean p_sym':>10} {'a1':>6} {'a4':>6}")
            for r in self.conditions.itertuples(index=False):
                lines.append(f"{r.condition:<20} {r.n_stimuli:>7} {r.mean_p_sym:>10.3f} {r.a1_overall:>6.3f} "
                             f"{r.a4_noise:>6.3f}")
        return lines


def _pair_rows(pairs: pd.DataFrame, judge: Any) -> pd.DataFrame:
    rows = []
    for content, a, b in pairs.itertuples(index=False):
        p_ab, p_ba = judge(content, a, b), judge(content, b, a)
        rows.append((content, a, b, obj_base.p_sym_value(p_ab, p_ba), p_ab, p_ba))
    return pd.DataFrame(rows, columns=["content", "cond_a", "cond_b", "p", "p_ab", "p_ba"])


def _condition_table(stimuli: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    sides = pd.concat([
        pairs.loc[:, ["cond_a", "p"]].rename(columns={"cond_a": "condition"}),
        pairs.loc[:, ["cond_b", "p"]].rename(columns={"cond_b": "condition"}).assign(p=lambda d: 1.0 - d["p"]),
    ])
    mean_p = sides.groupby("condition")["p"].mean()
    aux = stimuli.groupby("condition")[["aux_1", "aux_4"]].mean()
    out = pd.DataFrame({"n_stimuli": stimuli.groupby("condition").size()})
    out["mean_p_sym"] = mean_p.reindex(out.index)
    out["a1_overall"] = aux["aux_1"].reindex(out.index)
    out["a4_noise"] = aux["aux_4"].reindex(out.index)
    out = out.reset_index().rename(columns={"index": "condition"})
    return out.sort_values("mean_p_sym", ascending=False, na_position="last").reset_index(drop=True)


def score_study(
    stimuli: pd.DataFrame,
    pairs: pd.DataFrame,
    scorer: obj_base.Scorer,
    *,
    model: smodel.ScorerModel | None = None,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> StudyScores:
    """Score every stimulus and every needed pair of a study (through ``cache``).

    A scorer that can pair precomputed results (``compare_features``: the handcrafted
    scorer, fitted heads) analyses each stimulus once and pairs cost nothing; a fitted
    model file judges each pair with the head that never saw its votes. Other scorers
    (``command``, ``siamese-checkpoint``) are run on each needed pair in both orders.
    """
    label = f"{scorer.name} {scorer.version}"
    if model is not None:
        scorer = model.base_scorer()
        label = f"{scorer.name} {model.crossfit_scorer(scorer).version} (cross-fitted head)"
    elif getattr(scorer, "calibrated", None) is False:
        label += " (uncalibrated prior)"
    stimuli = stimuli.reset_index(drop=True)
    if model is not None or hasattr(scorer, "compare_features"):
        stim, names = smodel.stimulus_features(scorer, stimuli, cache=cache, workers=workers, progress=progress)
        failed = stim[stim["error"].notna()]
        if len(failed):
            raise obj_base.ScorerError(f"{len(failed)} stimulus file(s) failed: {failed['error'].iloc[0]}")
        cell = {(r["content"], r["condition"]): r for r in stim.to_dict("records")}

        def judge(content: str, a: str, b: str) -> float:
            ra, rb = cell[(content, a)], cell[(content, b)]
            fa, fb = {k: ra[k] for k in names}, {k: rb[k] for k in names}
            if model is not None:
                return model.crossfit.head_for(a, b).predict_one(fa, fb)
            return scorer.compare_features(  # type: ignore[attr-defined]
                fa, fb, tuple(ra[k] for k in _AUX), tuple(rb[k] for k in _AUX)).p

        pair_frame = _pair_rows(pairs, judge)
        counts = {"stimuli": len(stim), "stimuli_scored": int((~stim["cached"].astype(bool)).sum()),
                  "stimuli_cached": int(stim["cached"].astype(bool).sum()), "pairs": len(pair_frame),
                  "pairs_scored": 0, "pairs_cached": 0, "pairs_from_features": True}
    else:
        path = {(r.content, r.condition): r.path for r in stimuli.itertuples(index=False)}
        ordered = [(path[(c, a)], path[(c, b)]) for c, a, b in pairs.itertuples(index=False)]
        hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
        scored = score_pairs(scorer, ordered, cache=cache, workers=workers, progress=progress)
        bad = scored[scored["error"].notna()]
        if len(bad):
            raise obj_base.ScorerError(f"{len(bad)} pair(s) failed: {bad['error'].iloc[0]}")
        pair_frame = pairs.reset_index(drop=True).assign(p=scored["p"].to_numpy(), p_ab=scored["p_ab"].to_numpy(),
                                                         p_ba=scored["p_ba"].to_numpy())
        # A stimulus's aux: the mean of what its pairs reported for it.
        aux_rows = [scored[["path_a", *[f"aux_a_{k}" for k in range(1, 12)]]].set_axis(["path", *_AUX], axis=1),
                    scored[["path_b", *[f"aux_b_{k}" for k in range(1, 12)]]].set_axis(["path", *_AUX], axis=1)]
        aux = pd.concat(aux_rows).groupby("path", as_index=False).mean()
        stim = stimuli.merge(aux, on="path", how="left")
        n_scored = (cache.misses - misses) if cache is not None else 2 * len(ordered)
        counts = {"stimuli": len(stim), "stimuli_scored": 0, "stimuli_cached": 0, "pairs": len(pair_frame),
                  "pairs_scored": n_scored, "pairs_cached": (cache.hits - hits) if cache is not None else 0,
                  "pairs_from_features": False}
    return StudyScores(scorer=label, stimuli=stim, pairs=pair_frame, conditions=_condition_table(stim, pair_frame),
                       counts=counts)


# --------------------------------------------------------------------------- commands


def _require_schema() -> None:
    if not migrate.is_current(current_app.config["DATABASE_URL"]):
        raise click.ClickException("the database schema is not current: run `panelrank db upgrade` first")


def _load_study(slug: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any] | None]:
    """(votes, stimuli, needed pairs, manifest scorer) of a study, read in one transaction."""
    _require_schema()
    with db.transaction() as session:
        study = get_study(session, slug)
        if study is None:
            raise click.ClickException(f"no study with slug '{slug}'")
        return votes_frame(session, study), study_stimuli(session, study), study_pairs(session, study), \
            study_scorer(study)


def _scorer_spec(given: str | None, manifest: Mapping[str, Any] | None, options: tuple[str, ...]
                 ) -> tuple[obj_base.Scorer, smodel.ScorerModel | None]:
    spec: str | Mapping[str, Any] = given if given is not None else (manifest or DEFAULT_SCORER)
    try:
        return smodel.resolve_scorer(spec, smodel.parse_options(options))
    except smodel.SCORER_ERRORS as exc:
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
    _, stimuli, pairs, manifest_scorer = _load_study(study)
    scorer, model = _scorer_spec(scorer_spec, manifest_scorer, options)
    try:
        with ScoreCache(cache_path or default_cache_dir()) as cache:
            result = score_study(stimuli, pairs, scorer, model=model, cache=cache, workers=workers,
                                 progress=text_progress(label="scoring"))
    except smodel.SCORER_ERRORS as exc:
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
    if out is not None and out.suffix.lower() != ".json":
        raise click.BadParameter("the model file must end in .json", param_hint="--out")
    if scorer_spec is not None and smodel.is_model_file(scorer_spec):
        raise click.BadParameter("give the base scorer's name, not a model file", param_hint="--scorer")
    manifest_scorer = None
    from_file = Path(source).is_file()
    if from_file:
        if stimuli_path is None:
            raise click.UsageError("a votes file needs --stimuli stimuli.csv (columns content, condition, path)")
        try:
            votes = frames.read_votes(source)
            stimuli = smodel.read_stimuli_csv(stimuli_path)
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
        cfg = smodel.normalise_scorer_config(spec)
        cfg["options"].update(smodel.parse_options(options))
        with ScoreCache(cache_path or default_cache_dir()) as cache:
            model = smodel.fit_scorer_model(votes, stimuli, cfg, kind=kind, n_folds=folds, l2=l2, seed=seed,
                                          screen=not no_screening, cache=cache, workers=workers,
                                          progress=text_progress(label="scoring stimuli"), source=label)
    except (frames.FrameError, *smodel.SCORER_ERRORS) as exc:
        raise click.ClickException(str(exc)) from exc
    path = out or models_dir() / smodel.scorer_model_name(label, model)
    try:
        smodel.save_scorer_model(model, path)
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
    return f"{f:.3f}" if np.isfinite(f) else "n/a"


@click.command("analyze-study", short_help="Rank the conditions of a study; write a report.")
@click.argument("study")
@acli._analysis_options
@acli.tiebreak_options
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
    if no_tiebreak and (tiebreak is not None or s_obj_path is not None):
        raise click.UsageError("--no-tiebreak contradicts --tiebreak / --s-obj")
    votes, stimuli, _, manifest_scorer = _load_study(study)
    spec: str | Mapping[str, Any] | None = tiebreak
    if spec is None and s_obj_path is None and not no_tiebreak:
        spec = manifest_scorer
    acli.run_analysis(votes, out_dir, tiebreak=spec, stimuli=stimuli, s_obj_path=s_obj_path,
                      scorer_options=scorer_options, cache_dir=cache_dir or default_cache_dir(),
                      workers=workers, ties=ties, graded=graded, ci=ci, bootstrap=bootstrap, seed=seed, alpha=alpha,
                      no_screening=no_screening, reference=reference)


#: Commands for the ``panelrank`` group (registered by study_app.cli).
COMMANDS = [*acli.SCORER_COMMANDS, fit_scorer_command, score_study_command, analyze_study_command]

__all__ = ["COMMANDS", "StudyScores", "default_cache_dir", "models_dir", "score_study", "study_pairs", "study_scorer",
           "study_stimuli"]

