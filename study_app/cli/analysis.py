"""Analysts' commands: ``analyze`` (votes file → report), ``simulate`` (a synthetic study) and
``plan-votes`` (votes needed to separate conditions, from assumptions or a pilot).

They need no app and no database; any problem with the input (every schema problem at
once, a disconnected comparison graph, screening that leaves nobody, a scorer that
cannot run) is a one-line error, exit status 1, and nothing is written. The work is
:func:`analysis.pipeline.run_analysis` and :mod:`analysis.simulate`; the options shared
with ``analyze-study`` are :func:`analysis_options` and :func:`tiebreak_options`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from analysis import bradley_terry, methods, report

# The option choices above come from the library; the rest of it is imported when a command runs.


def _bootstrap_rounds(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """``--bootstrap``: at least 2 rounds with ``--ci bootstrap``, checked before any input is read."""
    if value < 2 and ctx.params.get("ci") == "bootstrap":
        raise click.BadParameter("the rater bootstrap needs at least 2 rounds", ctx=ctx, param=param)
    if value == 1:
        raise click.BadParameter("use at least 2 rounds", ctx=ctx, param=param)
    return value


def _apply(options: list[Callable[[Any], Any]], f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        f = option(f)
    return f


def analysis_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Fit options shared by ``analyze`` and ``analyze-study`` (see :func:`options_from`).

    Parameters
    ----------
    f : callable
        The command callback to decorate.

    Returns
    -------
    callable
        ``f`` with ``--out``, ``--ties``, ``--graded``, ``--ci``, ``--bootstrap``,
        ``--seed``, ``--alpha``, ``--no-screening`` and ``--reference`` attached.
    """
    return _apply([
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
    ], f)


def tiebreak_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Tie-break options shared by ``analyze`` and ``analyze-study``, as :func:`analysis_options` attaches its own.

    Attaches ``--tiebreak``, ``--s-obj``, ``--scorer-option``, ``--cache`` and ``--workers``.
    """
    return _apply([
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
    ], f)


def options_from(ties: str, graded: bool, ci: str, bootstrap: int, seed: int, alpha: float, no_screening: bool,
                 reference: str | None, published: Any = None) -> report.AnalysisOptions:
    """The :class:`~analysis.report.AnalysisOptions` of the :func:`analysis_options` values.

    Parameters
    ----------
    ties, graded, ci, bootstrap, seed, alpha, reference
        As the options of the same names.
    no_screening : bool
        Keep every rater (``ScreeningRules.none()``).
    published : DataFrame, optional
        ``condition, score`` published scores drawn next to ours.

    Returns
    -------
    AnalysisOptions
        The fit options.

    Raises
    ------
    click.ClickException
        When the options contradict each other.
    """
    from analysis import screening

    rules = screening.ScreeningRules.none() if no_screening else None
    try:
        return report.AnalysisOptions(ties=ties, ci=ci, bootstrap=bootstrap, seed=seed, screening_rules=rules,
                                      graded=graded, alpha=alpha, reference=reference, published=published)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def analyze_and_echo(votes: Any, out_dir: Path, options: report.AnalysisOptions, tiebreak: Any) -> None:
    """Run :func:`analysis.pipeline.run_analysis` and print its summary (notes on stderr).

    Parameters
    ----------
    votes : DataFrame
        The votes.
    out_dir : Path
        Report directory.
    options : AnalysisOptions
        How to fit.
    tiebreak : TiebreakSource
        What orders tie groups.

    Raises
    ------
    click.ClickException
        For any problem with the input, the scorer or the output directory; nothing is written.
    """
    from analysis import pipeline

    try:
        result = pipeline.run_analysis(votes, out_dir, options, tiebreak)
    except pipeline.ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
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
@analysis_options
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
    from analysis import frames, objective, pipeline

    try:
        df, published = report.read_input(votes)
        stimuli = objective.read_stimuli_csv(stimuli_path) if stimuli_path is not None else None
    except (frames.FrameError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    options = options_from(ties, graded, ci, bootstrap, seed, alpha, no_screening, reference, published)
    source = pipeline.TiebreakSource(scorer=tiebreak, stimuli=stimuli, s_obj_path=s_obj_path,
                                     scorer_options=scorer_options, cache_dir=cache_dir, workers=workers)
    analyze_and_echo(df, out_dir, options, source)


@click.command("simulate", short_help="Write a synthetic votes file with a known truth.")
@click.option("--conditions", "n_conditions", type=click.IntRange(min=2), default=12, show_default=True,
              help="Conditions (C01, C02, …).")
@click.option("--contents", "n_contents", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Contents (source clips).")
@click.option("--votes", "n_votes", type=click.IntRange(min=1), default=350_000, show_default=True,
              help="Regular trials (repeats and gold come on top).")
@click.option("--raters", "n_raters", type=click.IntRange(min=1), default=300, show_default=True,
              help="Raters (votes split among them, in sessions).")
@click.option("--method", type=click.Choice(list(methods.METHODS)), default="pc5", show_default=True,
              help="Test method: pairwise methods simulate side-by-side votes, ratings methods single-stimulus scores.")
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
def simulate_command(n_conditions: int, n_contents: int, n_votes: int, n_raters: int, method: str,
                     tie_rate: float | None, rater_noise: float, spammer_fraction: float, repeats_per_rater: int,
                     gold_per_rater: int, seed: int, out: Path, truth: Path | None) -> None:
    """Write a synthetic study with a known truth (valid tidy votes)."""
    from analysis import frames, simulate
    from analysis._files import write_csv

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("must end in .csv or .parquet", param_hint="--out")
    entry = methods.METHODS[method]
    schedule = {"repeats_per_rater": repeats_per_rater, "gold_per_rater": gold_per_rater}
    try:
        if entry.pairwise:
            if tie_rate is None:
                tie_rate = 0.2 if entry.allows_zero else 0.0
            sim = simulate.simulate_pairwise(
                simulate.PairwiseTruth(n_conditions=n_conditions, tie_rate=tie_rate),
                simulate.PairwisePanel(n_raters=n_raters, rater_noise=rater_noise, spammer_fraction=spammer_fraction),
                simulate.PairwiseDesign(n_contents=n_contents, n_votes=n_votes, method=method, **schedule), seed=seed)
        else:
            sim = simulate.simulate_ratings(
                simulate.RatingsTruth(n_conditions=n_conditions),
                simulate.RatingsPanel(n_raters=n_raters, spammer_fraction=spammer_fraction),
                simulate.RatingsDesign(n_contents=n_contents, n_votes=n_votes, method=method, **schedule), seed=seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    frames.write_votes(sim.votes, out)  # both writers create the parent directory
    if truth is not None:
        write_csv(sim.truth, truth)
    click.echo(f"wrote {len(sim.votes):,} {entry.kind} rows ({n_raters} raters, {n_conditions} conditions) to {out}"
               + (f"; truth to {truth}" if truth is not None else ""))


@click.command("plan-votes", short_help="Votes needed to separate conditions a given BT distance apart.")
@click.option("--delta", type=click.FloatRange(0, min_open=True), default=None,
              help="Difference to separate, in Bradley–Terry units (natural-log strength); with --pilot, "
                   "default: each adjacent pair's pilot difference.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Two-sided level of the test.")
@click.option("--power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True,
              help="Probability of separating two conditions DELTA apart.")
@click.option("--tie-rate", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Share of 'no preference' votes between equal conditions (from the pilot with --pilot).")
@click.option("--design-effect", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Variance inflation of correlated votes of one rater (from the pilot with --pilot).")
@click.option("--conditions", "n_conditions", type=click.IntRange(min=2), default=None,
              help="Conditions in the study: also print the totals over adjacent pairs and all pairs.")
@click.option("--pilot", "pilot", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Pairwise votes of a pilot (.csv or .parquet): tie rate, design effect and differences from it.")
def plan_votes_command(delta: float | None, alpha: float, power: float, tie_rate: float, design_effect: float,
                       n_conditions: int | None, pilot: Path | None) -> None:
    """Print the votes per condition pair needed to separate two conditions at ALPHA with POWER.

    From assumptions (--delta, --tie-rate, --design-effect) or from a pilot study (--pilot):
    the Wald sample size for the Davidson difference of one pair (analysis.planning.votes_needed).
    With --conditions, the study's totals are printed too, per pair at the Holm worst case
    (the ranking tests all n(n−1)/2 pairs, so the last one is tested at α/m at worst).
    """
    import pandas as pd

    from analysis import frames, planning

    if delta is None and pilot is None:
        raise click.UsageError("give --delta (BT units), --pilot VOTES, or both")
    try:
        if pilot is not None:
            plan = planning.votes_needed_from_pilot(frames.read_votes(pilot), delta=delta, alpha=alpha, power=power)
            tie_rate, design_effect = plan.tie_rate, plan.design_effect
            click.echo(f"pilot: {plan.n_votes:,} votes of {plan.n_raters} raters; tie rate {tie_rate:.3f}, "
                       f"design effect {design_effect:.2f}")
            if delta is None:
                click.echo(f"votes per adjacent pair to separate it at its pilot difference (α = {alpha:g}, "
                           f"power = {power:g}):")
                for row in plan.adjacent.itertuples(index=False):
                    need = "—" if pd.isna(row.votes_per_pair) else f"{int(row.votes_per_pair):,}"
                    click.echo(f"  {row.upper} > {row.lower}: diff {row.diff:.3f}, votes {need}")
                click.echo(f"total over adjacent pairs: {plan.total_adjacent:,}")
                return
        assert delta is not None
        kw = {"alpha": alpha, "power": power, "tie_rate": tie_rate, "design_effect": design_effect}
        per_pair = planning.votes_needed(delta, **kw)
    except (frames.FrameError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"votes per pair to separate two conditions {delta:g} BT apart (α = {alpha:g}, power = {power:g}, "
               f"tie rate {tie_rate:g}, design effect {design_effect:g}): {per_pair:,}")
    if n_conditions is not None:
        plan = planning.study_votes(delta, n_conditions, **kw)
        m = plan.comparisons
        click.echo(f"with {n_conditions} conditions, Holm over {m} pairs (worst case α/{m}): "
                   f"{plan.per_pair_holm:,} per pair")
        (adj, adj_holm), (every, every_holm) = plan.adjacent_total, plan.all_pairs_total
        click.echo(f"study total, adjacent pairs ({plan.adjacent_pairs}): {adj:,} ({adj_holm:,} at α/{m})")
        click.echo(f"study total, all pairs ({m}): {every:,} ({every_holm:,} at α/{m})")

