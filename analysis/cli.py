"""``panelrank analyze``, ``simulate``, ``score`` and ``challenge-score`` (plain click commands).

They need no Flask app: :data:`COMMANDS` and :data:`SCORER_COMMANDS` are registered on
the ``panelrank`` group by ``study_app.cli``, and the commands can be run directly with
``click.testing.CliRunner``. Any problem with the input (every schema problem at once,
a disconnected comparison graph, screening that leaves nobody, a scorer that cannot
run) becomes a ``click.ClickException`` naming it, exit status 1, and nothing is written.

The commands are thin: the scorer plumbing they share with the study commands
(``study_app.scoring``) — scorer configurations, fitted scorer model files, the
tie-breaker — lives in :mod:`analysis.objective.model`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pandas as pd

from analysis import bradley_terry, frames, report, screening, simulate
from analysis._files import write_csv
from analysis.objective import base as obj_base
from analysis.objective.cache import CachedScorer, ScoreCache, text_progress
from analysis.objective.model import (
    SCORER_ERRORS,
    build_tiebreaker,
    open_cache,
    parse_options,
    read_paths_csv,
    read_s_obj_csv,
    read_stimuli_csv,
    resolve_scorer,
    safe_name,
)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


# ========================================================================================
# analyze / simulate
# ========================================================================================


def _bootstrap_rounds(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """``--bootstrap``: at least 2 rounds with ``--ci bootstrap``, checked before any input is read."""
    if value < 2 and ctx.params.get("ci") == "bootstrap":
        raise click.BadParameter("the rater bootstrap needs at least 2 rounds", ctx=ctx, param=param)
    if value == 1:
        raise click.BadParameter("use at least 2 rounds", ctx=ctx, param=param)
    return value


def _analysis_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``analyze`` and ``analyze-study``."""
    options = [
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Directory for scores.csv, ranking.csv, raters.csv and report.html."),
        click.option("--ties", type=click.Choice(bradley_terry.TIE_MODELS), default="davidson", show_default=True,
                     help="How 'no preference' votes enter the Bradley–Terry fit."),
        click.option("--graded", is_flag=True, help="Count a strong preference as two wins (pairwise)."),
        click.option("--ci", type=click.Choice(report.CI_CHOICES), default="cluster", show_default=True,
                     is_eager=True,
                     help="Interval method: rater-clustered (sandwich), rater bootstrap, or model-based (Hessian / "
                          "Student-t, which treat votes as independent)."),
        click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
                     callback=_bootstrap_rounds, help="Rater-bootstrap rounds (with --ci bootstrap)."),
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
    """Tie-break options shared by ``analyze`` and ``analyze-study``.

    Parameters
    ----------
    f : callable
        The command callback to decorate.

    Returns
    -------
    callable
        ``f`` with the ``--tiebreak``, ``--s-obj``, ``--scorer-option``, ``--cache`` and
        ``--workers`` click options attached.
    """
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
    ci: str = "cluster",
) -> None:
    """The body of ``analyze`` / ``analyze-study``: analyse, write the report, echo a summary.

    The options are those of the commands (``--bootstrap`` is checked by its option).

    Parameters
    ----------
    df : DataFrame
        Votes, ratings or a pair table (validated by :func:`analysis.report.analyze`).
    out_dir : Path
        Report directory (see :func:`analysis.report.write_report`).
    published : DataFrame, optional
        ``condition, score`` published scores to draw next to ours.
    tiebreak : str or mapping, optional
        Tie-break scorer: a registered name, a model file, or a scorer config.
    stimuli : DataFrame, optional
        Stimulus files the tie-break scorer reads.
    s_obj_path : Path, optional
        CSV ``condition, s_obj``: break ties by S_obj instead of a scorer.
    scorer_options : sequence of str or mapping
        ``KEY=VALUE`` options of the tie-break scorer (only with ``tiebreak``).
    cache_dir : Path, optional
        Score cache directory (default: no cache).
    workers : int
        Processes scoring stimuli in parallel.
    ties : {"davidson", "rao-kupper", "split"}
        Bradley–Terry tie model.
    graded : bool
        A vote of strength ``|pref|`` counts as that many wins.
    bootstrap : int
        Rater-bootstrap rounds (with ``ci="bootstrap"``).
    seed : int
        Seed of the bootstrap.
    alpha : float
        1 − confidence level and family-wise level of the tests.
    no_screening : bool
        Keep every rater (``ScreeningRules.none()``).
    reference : str, optional
        Hidden-reference condition of an ACR-HR study.
    ci : {"cluster", "bootstrap", "model"}
        Interval method (see :func:`analysis.report.analyze`).

    Raises
    ------
    click.ClickException
        For any problem with the input, the scorer or the output directory; nothing is written.
    """
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
            result = report.analyze(df, ties=ties, ci=ci, bootstrap=bootstrap, seed=seed, screening_rules=rules,
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


@click.command("analyze", short_help="Rank the conditions of a votes file; write a report.")
@click.argument("votes", type=click.Path(dir_okay=False, path_type=Path))
@_analysis_options
@click.option("--stimuli", "stimuli_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV content,condition,path of the stimulus files (needed by --tiebreak NAME).")
@tiebreak_options
def analyze_command(votes: Path, out_dir: Path, ties: str, graded: bool, ci: str, bootstrap: int, seed: int,
                    alpha: float, no_screening: bool, reference: str | None, stimuli_path: Path | None,
                    tiebreak: str | None, s_obj_path: Path | None, scorer_options: tuple[str, ...],
                    cache_dir: Path | None, workers: int) -> None:
    """Rank the conditions of VOTES and write a report directory.

    VOTES is a pairwise or ratings vote file (.csv or .parquet, as `panelrank export`
    writes), a pair table (cond_a, cond_b with counts or a mean vote), or an NTIRE VQE
    result file (.txt).

    With --tiebreak (or --s-obj), conditions the votes cannot separate are ordered by
    an objective score; ranking.csv says `tiebreak:<name>@<version>` for the pairs the
    scorer separated, and report.html shows the scorer's agreement with the votes.
    """
    try:
        df, published = report.read_input(votes)
        stimuli = read_stimuli_csv(stimuli_path) if stimuli_path is not None else None
    except (frames.FrameError, ValueError) as exc:
        raise _fail(exc) from exc
    run_analysis(df, out_dir, published=published, tiebreak=tiebreak, stimuli=stimuli, s_obj_path=s_obj_path,
                 scorer_options=scorer_options, cache_dir=cache_dir, workers=workers, ties=ties, graded=graded,
                 ci=ci, bootstrap=bootstrap, seed=seed, alpha=alpha, no_screening=no_screening, reference=reference)


@click.command("simulate", short_help="Write a synthetic votes file with a known truth.")
@click.option("--conditions", "n_conditions", type=click.IntRange(min=2), default=12, show_default=True,
              help="Conditions (C01, C02, …).")
@click.option("--contents", "n_contents", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Contents (source clips).")
@click.option("--votes", "n_votes", type=click.IntRange(min=1), default=350_000, show_default=True,
              help="Regular trials (repeats and gold come on top).")
@click.option("--raters", "n_raters", type=click.IntRange(min=1), default=300, show_default=True,
              help="Raters (votes split among them, in sessions).")
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
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation.")
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
    kind = frames.SCALES[scale].kind
    try:
        if kind == "pairwise":
            if tie_rate is None:
                tie_rate = 0.0 if not frames.SCALES[scale].allows_zero else 0.2
            sim = simulate.simulate_pairwise(n_conditions, n_contents, n_votes, n_raters, scale=scale,
                                             tie_rate=tie_rate, rater_noise=rater_noise, **common)
        else:
            sim = simulate.simulate_ratings(n_conditions, n_contents, n_raters, scale=scale, n_votes=n_votes,
                                            **common)
    except ValueError as exc:
        raise _fail(exc) from exc
    frames.write_votes(sim.votes, out)  # both writers create the parent directory
    if truth is not None:
        write_csv(sim.truth, truth)
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
    """One pair, both orders: ``p`` = p_sym(A, B), ``p_ab``, ``p_ba``, the averaged aux of A and B.

    Parameters
    ----------
    scorer : Scorer
        Compares the two files (called once in each order).
    path_a, path_b : str or Path
        The two stimuli.

    Returns
    -------
    dict
        ``a, b, scorer, version, calibrated, p, p_ab, p_ba, aux_a, aux_b`` (JSON-ready;
        ``calibrated`` is ``None`` when the scorer does not say).

    Raises
    ------
    ScorerError
        Whatever the scorer raises for an unreadable pair.
    """
    ab = scorer.compare(path_a, path_b)
    ba = scorer.compare(path_b, path_a)
    sym = obj_base.combine_orders(ab, ba)
    return {
        "a": str(path_a), "b": str(path_b), "scorer": scorer.name, "version": scorer.version,
        "calibrated": getattr(scorer, "calibrated", None),
        "p": sym.p, "p_ab": ab.p, "p_ba": ba.p, "aux_a": list(sym.aux_a), "aux_b": list(sym.aux_b),
    }


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
                scorer = CachedScorer(scorer, stack.enter_context(ScoreCache(cache_dir)))
            answer = pair_json(scorer, a, b)
    except SCORER_ERRORS as exc:
        raise _fail(exc) from exc
    click.echo(json.dumps(answer, indent=2))


#: Columns of the ``challenge-score`` inputs.
REAL_INPUT_COLUMNS = ("condition", "video", "output_path", "input_path")
SYNTH_INPUT_COLUMNS = ("condition", "video", "output_path", "target_path")


def read_challenge_input(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A ``challenge-score`` input CSV; relative file paths resolve against its folder.

    ``columns`` are ``condition, video`` and then the file-path columns. Every problem
    (missing files, duplicate or empty keys) is listed in one ``ValueError``.

    Parameters
    ----------
    path : str or Path
        The CSV.
    columns : sequence of str
        Required columns (:data:`REAL_INPUT_COLUMNS` or :data:`SYNTH_INPUT_COLUMNS`).

    Returns
    -------
    DataFrame
        The rows, with the path columns resolved to existing files.

    Raises
    ------
    ValueError
        On missing columns or files, duplicate ``(condition, video)`` rows or empty keys.
    """
    df = read_paths_csv(path, columns, columns[2:], must_exist=True)
    problems = []
    dup = df.duplicated(["condition", "video"])
    if dup.any():
        problems.append(f"{int(dup.sum())} duplicate (condition, video) row(s)")
    empty = (df[["condition", "video"]] == "").any(axis=1)
    if empty.any():
        problems.append(f"{int(empty.sum())} row(s) with an empty condition or video")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
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

    Parameters
    ----------
    scorer : Scorer or None
        Scores the real videos (output against input); needed when ``real`` has rows.
    real : DataFrame or None
        Rows ``condition, video, output_path, input_path`` (see
        :func:`read_challenge_input`).
    synth : DataFrame or None
        Rows ``condition, video, output_path, target_path``.
    symmetric : bool
        Score real videos in both orders (p_sym) rather than one.
    cache : ScoreCache, optional
        Score cache.
    workers : int
        Processes scoring in parallel.
    progress : callable, optional
        Progress callback (see :func:`analysis.objective.cache.text_progress`).

    Returns
    -------
    real_by_condition : dict of str to DataFrame
        ``video_i, m_1..m_12`` per condition, sorted by condition.
    synth_by_condition : dict of str to DataFrame
        ``video_i, rmse`` per condition.
    s_values : DataFrame
        ``condition, s_real, s_synth, s_obj, n_real, n_synth`` (NaN where a set is absent).

    Raises
    ------
    ScorerError
        When a real video could not be scored.
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


#: Commands for the ``panelrank`` group (registered by study_app.cli).
COMMANDS = [analyze_command, simulate_command]
#: File-based objective-scorer commands (registered by study_app.cli through study_app.scoring).
SCORER_COMMANDS = [score_command, challenge_score_command]
