"""``panelrank analyze`` and ``panelrank simulate`` (plain click commands).

They need no Flask app: :data:`COMMANDS` is registered on the ``panelrank`` group by
``study_app.cli``, and the commands can be run directly with
``click.testing.CliRunner``. Any problem with the input (every schema problem at once,
a disconnected comparison graph, screening that leaves nobody) becomes a
``click.ClickException`` naming it, exit status 1, and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pandas as pd

from analysis import bradley_terry, frames, report, screening, simulate


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("analyze")
@click.argument("votes", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for scores.csv, ranking.csv, raters.csv and report.html.")
@click.option("--ties", type=click.Choice(bradley_terry.TIE_MODELS), default="davidson", show_default=True,
              help="How 'no preference' votes enter the Bradley–Terry fit.")
@click.option("--graded", is_flag=True, help="Count a strong preference as two wins (pairwise).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Rater-bootstrap rounds (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="1 − confidence level; family-wise level of the tests.")
@click.option("--no-screening", is_flag=True, help="Keep every rater (no screening rule applied).")
@click.option("--reference", default=None, help="Hidden-reference condition of an ACR-HR study.")
def analyze_command(votes: Path, out_dir: Path, ties: str, graded: bool, bootstrap: int, seed: int, alpha: float,
                    no_screening: bool, reference: str | None) -> None:
    """Rank the conditions of VOTES and write a report directory.

    VOTES is a pairwise or ratings vote file (.csv or .parquet, as `panelrank export`
    writes), a pair table (cond_a, cond_b with counts or a mean vote), or an NTIRE VQE
    result file (.txt).
    """
    if bootstrap == 1:
        raise click.BadParameter("use 0 (no bootstrap) or at least 2 rounds", param_hint="--bootstrap")
    rules = screening.ScreeningRules.none() if no_screening else None
    try:
        df, published = report.read_input(votes)
        result = report.analyze(df, ties=ties, bootstrap=bootstrap, seed=seed, screening_rules=rules,
                                graded=graded, alpha=alpha, reference=reference, published=published)
    except (frames.FrameError, bradley_terry.ComparisonGraphError, ValueError) as exc:
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
    click.echo(f"wrote {', '.join(report.REPORT_FILES)} to {out_dir}")


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


#: Commands for the ``panelrank`` group (registered by study_app.cli).
COMMANDS = [analyze_command, simulate_command]
