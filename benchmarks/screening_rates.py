"""Screening at default settings: how often honest raters are dropped and random clickers caught.

Run: ``.venv/bin/python benchmarks/screening_rates.py [--panels 100] [--gold-panels 100] [--jobs 2]``
(prints figures; asserts nothing).

Targets (issue 9): an honest rater is dropped by chance ≤ 2% of the time; a uniform random
clicker with ≥ 30 votes is caught ≥ 90% of the time — on pairwise and on ratings data.

Panels come from :mod:`analysis.simulate` with rater-to-rater differences:

* **moderate** — as large as in two real ACR lab panels (``/work/shared/data/real-ratings``:
  per subject, the slope on the other subjects' mean varies by a log-sd of 0.13–0.19, the
  residual sd by 0.13–0.17 and signal-to-noise by 0.21–0.23, each including ~0.07 of estimation
  noise; bias sd 0.32–0.44 points). Pairwise: discrimination and decisiveness log-sd 0.25, left
  lean sd 0.1, own view of the conditions sd 0.2. Ratings: bias sd 0.35, inconsistency 0.6
  (coefficient of variation 0.15), stretch of the quality range log-sd 0.15.
* **strong** — twice that (a crowd panel): pairwise 0.5 / 0.5 / 0.2 / 0.4; ratings bias sd 0.7,
  inconsistency cv 0.3, stretch log-sd 0.3.

Pairwise: ``pc5``, 30 raters per panel, 12 conditions with true log-strengths ~ N(0, 1)
("close") or N(0, 2²) ("wide"). Ratings: 12 conditions (sd 1 point, as in the real panels) × 8
contents, 24 raters per panel. Clicker panels add 10% uniform random clickers who take as long
as everyone else and see no gold, so only the answers can give them away. "by agreement" is the
rule that judges answers against the other raters (``bt_agreement`` for pairwise, ``loo_corr``
for ratings); "untested" is the share of raters that rule left alone because a typical rater
of the panel would need more votes to pass it reliably; "tested from" is the median over
panels of that number of votes (items).

**With the study's own quality control** (the last section, ``--gold-panels`` per row): the same
panels with 30 main votes (items) per rater, plus ``g`` = 1, 2, 3 gold trials per rater, as a study
with ``gold_per_session`` = g and 30 trials per session would show. Pairwise gold is the
simulator's reference-vs-degraded pair, expected +2; ratings gold is a "select N" card, N drawn
from 2–4 on acr5. Both carry the manifest's default ``tolerance`` of 1 (``study_app/manifest.py``
gives every gold item 1 unless it says otherwise, on either method), written to the frame's
``gold_tolerance`` column as the export does. Clickers answer gold at random (within ±1 of +2 with
probability 2/5 on pc5; within ±1 of N with probability 3/5 on acr5), still at a human pace. The
honest raters' gold answers follow the simulator: correct, or one step off with probability
``gold_slip`` — inside the tolerance, so in these panels the gold rule never drops an honest rater
and their drop rate comes from the other rules alone. Pairwise panels are the "close" ones: with
30 votes ``bt_agreement`` leaves everyone untested on "wide" panels too (see the rows above), so gold
is all there is; panels of the same seed give the clickers the same gold answers at either
heterogeneity, so the two pairwise clicker rows of a ``g`` coincide. "±" is the 95% half-width of a
rate, from the spread between panels; "≤" ("≥") the 95% upper (lower) bound of a rate that was 0%
(100%), by the rule of three. The section runs its rows in ``--jobs`` processes.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from analysis import frames, screening, simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth, RatingsDesign, RatingsPanel, RatingsTruth

PAIRWISE_HET = {
    "moderate": dict(rater_scale_sd=0.25, rater_decisiveness_sd=0.25, rater_position_sd=0.1, rater_noise=0.2),
    "strong": dict(rater_scale_sd=0.5, rater_decisiveness_sd=0.5, rater_position_sd=0.2, rater_noise=0.4),
}
RATINGS_HET = {
    "moderate": dict(rater_bias_sd=0.35, rater_inconsistency=0.6, rater_inconsistency_cv=0.15, rater_scale_sd=0.15),
    "strong": dict(rater_bias_sd=0.7, rater_inconsistency=0.6, rater_inconsistency_cv=0.3, rater_scale_sd=0.3),
}
CLICKER_SHARE = 0.1
#: Gold trials per rater in the quality-control section, and its main votes (items) per rater.
GOLD_COUNTS = (1, 2, 3)
GOLD_MAIN_VOTES = 30
#: A gold item's tolerance when the manifest does not give one (study_app/manifest.py, both methods).
MANIFEST_GOLD_TOLERANCE = 1


@dataclass
class Rates:
    """Counts over many panels of one kind of rater."""

    raters: int = 0
    dropped: int = 0
    untested: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    tested_from: list[float] = field(default_factory=list)
    per_panel: list[tuple[int, int]] = field(default_factory=list)

    def add(self, table: pd.DataFrame, p_col: str, tested_from: float) -> None:
        self.raters += len(table)
        self.dropped += int((~table["kept"]).sum())
        self.per_panel.append((len(table), int((~table["kept"]).sum())))
        self.by_rule.update(rule for names in table["dropped_by"] for rule in filter(None, names.split(";")))
        self.untested += int(table[p_col].isna().sum())
        self.tested_from.append(tested_from)

    def merge(self, other: Rates) -> Rates:
        """The counts of both (panels of one row run in several processes)."""
        return Rates(self.raters + other.raters, self.dropped + other.dropped, self.untested + other.untested,
                     self.by_rule + other.by_rule, self.tested_from + other.tested_from,
                     self.per_panel + other.per_panel)

    def half_width(self) -> float:
        """95% half-width of the drop rate in %, from the spread between panels (raters of a panel share its fit)."""
        n_i, k_i = np.array(self.per_panel, dtype=float).reshape(-1, 2).T
        if len(n_i) < 2 or n_i.sum() == 0:
            return np.nan
        p = k_i.sum() / n_i.sum()
        var = len(n_i) / (len(n_i) - 1) * np.sum((k_i - p * n_i) ** 2) / n_i.sum() ** 2
        return 100 * 1.96 * np.sqrt(var)

    def line(self, verb: str, rule: str, ci: bool = False) -> str:
        n = max(self.raters, 1)
        others = ", ".join(f"{r} {100 * k / n:.1f}%" for r, k in self.by_rule.most_common() if r != rule)
        if not ci:
            pm = ""
        elif self.dropped in (0, self.raters):  # no spread to measure: rule of three
            pm = f" ≤{300 / n:3.1f}" if self.dropped == 0 else f" ≥{100 - 300 / n:3.1f}"
        else:
            pm = f" ±{self.half_width():3.1f}"
        return (f"{verb} {100 * self.dropped / n:5.1f}%{pm}  by agreement {100 * self.by_rule[rule] / n:5.1f}%  "
                f"untested {100 * self.untested / n:5.1f}%  tested from {np.median(self.tested_from):4.0f}  "
                f"(n={self.raters}){'  other rules: ' + others if others else ''}")


def _honest_timing(votes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Everyone answers at a human pace: the simulator's clickers would be caught by timing alone."""
    rng = np.random.default_rng(seed)
    return votes.assign(answer_ms=np.round(rng.lognormal(np.log(2500), 0.5, len(votes))).astype(np.int64))


def _with_gold_tolerance(sim: simulate.Simulation, tolerance: int) -> simulate.Simulation:
    """Give every gold row the manifest's tolerance in ``gold_tolerance``, as the export writes it."""
    if "gold_tolerance" in sim.votes.columns:
        return sim
    gold = sim.votes["gold_expected"].notna().to_numpy(dtype=bool)
    column = pd.array(np.where(gold, tolerance, 0), dtype="Int64")
    column[~gold] = pd.NA
    return replace(sim, votes=sim.votes.assign(gold_tolerance=column))


def _pairwise(votes_per_rater: int, het: str, spread: float, clickers: bool, seed: int,
              gold: int = 0) -> simulate.Simulation:
    sim = simulate.simulate_pairwise(PairwiseTruth(12, score_sd=spread),
                                     PairwisePanel(30, spammer_fraction=CLICKER_SHARE * clickers, **PAIRWISE_HET[het]),
                                     PairwiseDesign(20, 30 * votes_per_rater, gold_per_rater=gold), seed=seed)
    return _with_gold_tolerance(sim, MANIFEST_GOLD_TOLERANCE) if gold else sim


def _ratings(votes_per_rater: int | None, het: str, clickers: bool, seed: int, method: str,
             gold: int = 0) -> simulate.Simulation:
    unit = 25.0 if method == "slider100" else 1.0
    kw: dict[str, Any] = {k: v * unit if k in ("rater_bias_sd", "rater_inconsistency") else v
                          for k, v in RATINGS_HET[het].items()}
    n_votes = None if votes_per_rater is None else 24 * votes_per_rater
    sim = simulate.simulate_ratings(RatingsTruth(12, condition_sd=1.0 * unit),
                                    RatingsPanel(24, spammer_fraction=CLICKER_SHARE * clickers, **kw),
                                    RatingsDesign(8, method=method, n_votes=n_votes, gold_per_rater=gold), seed=seed)
    return _with_gold_tolerance(sim, MANIFEST_GOLD_TOLERANCE) if gold else sim


def _run(make, panels: int, rule: str, p_col: str, start: int = 0) -> tuple[Rates, Rates]:
    honest, clicker = Rates(), Rates()
    for seed in range(start, start + panels):
        for with_clickers in (False, True):
            sim = make(with_clickers, seed)
            result = screening.screen(_honest_timing(sim.votes, seed))
            table, tested_from = result.raters, result.agreement_min_n[rule]
            spam = table["rater"].isin(set(sim.raters.loc[sim.raters["spammer"], "rater"].astype(str)))
            if with_clickers:
                clicker.add(table[spam], p_col, tested_from)
            else:
                honest.add(table, p_col, tested_from)
    return honest, clicker


def rates(panels: int) -> None:
    print(f"Drop / catch rates at default ScreeningRules over {panels} panels per row")
    for spread, sd, grid in (("close", 1.0, (30, 60, 120, 240)), ("wide", 2.0, (30, 60, 120))):
        for het in PAIRWISE_HET:
            for v in grid:
                honest, clicker = _run(lambda c, s, v=v, het=het, sd=sd: _pairwise(v, het, sd, c, s), panels,
                                       "bt_agreement", "bt_p")
                print(f"  pairwise {spread:<5} {het:<8} {v:3d} votes/rater  honest: "
                      f"{honest.line('dropped', 'bt_agreement')}")
                print(f"  {'':<38}clickers: {clicker.line('caught ', 'bt_agreement')}")
    for het in RATINGS_HET:
        for method, v in (("acr5", 30), ("acr5", 60), ("acr5", None), ("slider100", None)):
            label = f"{v:3d}" if v else "all"
            honest, clicker = _run(lambda c, s, v=v, het=het, method=method: _ratings(v, het, c, s, method), panels,
                                   "loo_corr", "loo_p")
            print(f"  ratings {method:<9} {het:<8} {label} of 96 items  honest: {honest.line('dropped', 'loo_corr')}")
            print(f"  {'':<40}clickers: {clicker.line('caught ', 'loo_corr')}")


def _gold_chunk(kind: str, het: str, gold: int, start: int, panels: int) -> tuple[Rates, Rates]:
    """Panels ``start … start + panels − 1`` of one row of :func:`gold_rates` (top level: runs in a worker)."""
    v = GOLD_MAIN_VOTES
    if kind == "pairwise":
        return _run(partial(_pairwise, v, het, 1.0, gold=gold), panels, "bt_agreement", "bt_p", start)
    return _run(partial(_ratings, v, het, method="acr5", gold=gold), panels, "loo_corr", "loo_p", start)


def gold_rates(panels: int, jobs: int) -> None:
    t0 = time.perf_counter()
    print(f"With the study's own quality control: {GOLD_MAIN_VOTES} main votes (items) + g gold per rater, "
          f"gold tolerance {MANIFEST_GOLD_TOLERANCE}, default ScreeningRules, {panels} panels per row")
    rows = [(kind, het, g) for kind, kinds in (("pairwise", PAIRWISE_HET), ("ratings", RATINGS_HET))
            for het in kinds for g in GOLD_COUNTS]
    cuts = np.linspace(0, panels, max(jobs, 1) + 1).round().astype(int)
    chunks = [(a, b - a) for a, b in itertools.pairwise(cuts) if b > a]
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = [[pool.submit(_gold_chunk, *row, int(a), int(n)) for a, n in chunks] for row in rows]
        for (kind, het, g), parts in zip(rows, futures, strict=True):
            results = [f.result() for f in parts]
            honest, clicker = results[0]
            for h, c in results[1:]:
                honest, clicker = honest.merge(h), clicker.merge(c)
            rule = "bt_agreement" if kind == "pairwise" else "loo_corr"
            label = (f"pairwise pc5 close {het:<8} {GOLD_MAIN_VOTES} votes" if kind == "pairwise"
                     else f"ratings acr5       {het:<8} {GOLD_MAIN_VOTES} items")
            print(f"  {label} + {g} gold  honest: {honest.line('dropped', rule, ci=True)}")
            print(f"  {'':<45}clickers: {clicker.line('caught ', rule, ci=True)}")
    print(f"  ({time.perf_counter() - t0:.0f} s in {max(jobs, 1)} processes)")


def _best(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed() -> None:
    print("Time to screen 600 raters (best of 3, validated frames)")
    panel = PairwisePanel(600, spammer_fraction=0.1, **PAIRWISE_HET["moderate"])
    pw = frames.validate(simulate.simulate_pairwise(PairwiseTruth(12), panel, PairwiseDesign(200, 600 * 100),
                                                    seed=1).votes)
    main = screening.main_votes(pw)
    print(f"  pairwise, 60,000 votes:  screen {1e3 * _best(lambda: screening.screen(pw)):7.1f} ms, "
          f"of which bt_agreement {1e3 * _best(lambda: screening.agreement._bt_agreement(main)):6.1f} ms")
    small = frames.validate(simulate.simulate_pairwise(PairwiseTruth(12),
                                                       PairwisePanel(50),
                                                       PairwiseDesign(20, 50 * 60),
                                                       seed=1).votes)
    main = screening.main_votes(small)
    print(f"  pairwise, 50 raters (exact leave-one-out refits): bt_agreement "
          f"{1e3 * _best(lambda: screening.agreement._bt_agreement(main)):6.1f} ms")
    rt = frames.validate(simulate.simulate_ratings(RatingsTruth(12),
                                                   RatingsPanel(600, spammer_fraction=0.1),
                                                   RatingsDesign(4),
                                                   seed=1).votes)
    print(f"  ratings, 600 × 48 scores: screen {1e3 * _best(lambda: screening.screen(rt)):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=100, help="simulated panels per row (default 100)")
    parser.add_argument("--gold-panels", type=int, default=100,
                        help="simulated panels per row of the quality-control section (default 100; 0 skips it)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the quality-control section (default 2)")
    args = parser.parse_args()
    speed()
    rates(args.panels)
    if args.gold_panels > 0:
        gold_rates(args.gold_panels, args.jobs)


if __name__ == "__main__":
    main()
