"""Bradley–Terry speed: our fit and rater bootstrap next to choix and a naive bootstrap.

Run: ``.venv/bin/python benchmarks/bt_speed.py`` (prints figures; asserts nothing).

Scenarios (PROTOCOL.md §5):

* 12 conditions × 350,000 votes × 300 raters (the 2025 challenge's study);
  targets: fit ≤ 20 ms after counting, fit with the default (rater-clustered) intervals
  ≤ 50 ms after counting, 1,000 rater-bootstrap rounds ≤ 2 s;
* 3,000 items × 300,000 votes (random pairs); targets: fit ≤ 0.5 s, fit with the
  default intervals ≤ 1 s.

Comparisons with choix are like with like: choix has no tie model, so it gets the votes
without the "no preference" ones, and our tie-free fit gets the same input at the same
stage — ``ilsr_pairwise_dense`` and our :func:`bradley_terry.fit_counts` on one count
matrix; ``ilsr_pairwise`` on the vote list and our count-then-fit on the same decided
votes. Neither side computes intervals in these rows. The naive bootstrap resamples
raters, rebuilds the vote frame and calls :func:`bradley_terry.fit` per round; a few
rounds are timed and extrapolated to 1,000.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import choix
import numpy as np
import pandas as pd
from scipy import sparse

from analysis import bradley_terry as bt
from analysis import simulate
from analysis.simulate import PairwiseDesign, PairwisePanel, PairwiseTruth


def _time(fn: Callable[[], Any], repeat: int = 1) -> tuple[tuple[float, float], Any]:
    """Best (wall, CPU) seconds over ``repeat`` runs and the last result.

    CPU time is printed too because shared machines inflate wall time under load.
    """
    best, best_cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return (best, best_cpu), out


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f} ms" if seconds < 10 else f"{seconds:9.1f} s "


def _row(label: str, seconds: tuple[float, float], note: str = "") -> None:
    wall, cpu = seconds
    print(f"  {label:<58} wall {_fmt(wall)}  cpu {_fmt(cpu)}  {note}")


def _winner_loser(votes: pd.DataFrame, conditions: tuple[str, ...]) -> list[tuple[int, int]]:
    """choix's input: (winner, loser) index pairs of the decided main votes."""
    v = votes[votes["repeat_of"].isna() & votes["gold_expected"].isna() & (votes["pref"] != 0)]
    idx = {c: k for k, c in enumerate(conditions)}
    a = v["cond_a"].map(idx).to_numpy()
    b = v["cond_b"].map(idx).to_numpy()
    a_won = v["pref"].to_numpy(dtype=int) > 0
    return list(zip(np.where(a_won, a, b).tolist(), np.where(a_won, b, a).tolist(), strict=True))


def _naive_bootstrap_round(votes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    raters = votes["rater"].unique()
    pick = rng.choice(raters, len(raters), replace=True)
    parts = []
    for k, r in enumerate(pick):
        part = votes[votes["rater"] == r]
        parts.append(part.assign(rater=f"{r}#{k}", session=part["session"] + f"#{k}"))
    return bt.fit(pd.concat(parts, ignore_index=True), ci="none").scores


def _count_and_fit(n: int, decided: list[tuple[int, int]]) -> np.ndarray:
    """Our fit from the same (winner, loser) list choix gets: count into a sparse matrix, then fit."""
    pairs = np.asarray(decided)
    wins = sparse.coo_array((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    return bt.fit_counts([str(k) for k in range(n)], wins, None, ci="none").scores


def challenge_scenario(n_boot: int, naive_rounds: int) -> None:
    print("12 conditions × 350,000 votes × 300 raters (pc5, 20 % ties)")
    t_sim, sim = _time(lambda: simulate.simulate_pairwise(PairwiseTruth(12, tie_rate=0.2),
                                                          PairwisePanel(300),
                                                          PairwiseDesign(3000, 350_000),
                                                          seed=1))
    _row("simulate (validated frame)", t_sim)
    t_count, vc = _time(lambda: bt.count_votes(sim.votes))
    _row("count votes → sufficient statistics (incl. validation)", t_count)
    kw: dict[str, Any] = dict(graded=False, anchor=None, elo=False, n_boot=n_boot, seed=0, alpha=0.05,
                              sparse_solver=None)
    for ties in bt.TIE_MODELS:
        t, _ = _time(lambda ties=ties: bt.fit(vc, ties=ties, ci="none", **kw), repeat=5)
        _row(f"our fit after counting, ties={ties}, no intervals", t, "(target ≤ 20 ms)")
    for ties in bt.TIE_MODELS:
        t, _ = _time(lambda ties=ties: bt.fit(vc, ties=ties, ci="cluster", **kw), repeat=5)
        _row(f"our fit after counting, ties={ties}, rater-clustered CIs (default)", t, "(target ≤ 50 ms)")
    t, _ = _time(lambda: bt.fit(vc, ties="davidson", ci="hessian", **kw), repeat=5)
    _row("our fit after counting, davidson, Hessian CIs", t)
    t, res = _time(lambda: bt.fit(vc, ties="davidson", ci="bootstrap", **kw), repeat=2)
    _row(f"our fit + {n_boot}-round rater bootstrap (davidson)", t, "(target ≤ 2 s)")
    t_full, _ = _time(lambda: bt.fit(sim.votes))
    _row("bt.fit(votes) end to end: count, fit, clustered CIs (votes already validated)", t_full)

    decided = _winner_loser(sim.votes, vc.pairs.conditions)
    wins, _ = vc.pairs.matrices()
    n = len(vc.pairs.conditions)
    t_ilsr, _ = _time(lambda: choix.ilsr_pairwise(n, decided, tol=1e-10, max_iter=1000))
    _row(f"choix.ilsr_pairwise on {len(decided):,} decided votes", t_ilsr)
    t_ours_votes, _ = _time(lambda: _count_and_fit(n, decided), repeat=3)
    _row("our count + fit_counts on the same decided votes", t_ours_votes)
    t_dense, c2 = _time(lambda: choix.ilsr_pairwise_dense(wins, tol=1e-10, max_iter=1000), repeat=5)
    _row("choix.ilsr_pairwise_dense on the count matrix", t_dense)
    t_ours, ours = _time(lambda: bt.fit_counts(vc.pairs.conditions, wins, None, ci="none"), repeat=5)
    _row("our fit_counts on the same tie-free counts", t_ours,
         f"(max |Δ| vs choix {np.abs(ours.scores - (c2 - c2.mean())).max():.1e})")

    rng = np.random.default_rng(0)
    t_naive, _ = _time(lambda: [_naive_bootstrap_round(sim.votes, rng) for _ in range(naive_rounds)])
    per_round = (t_naive[0] / naive_rounds, t_naive[1] / naive_rounds)
    _row(f"naive bootstrap: rebuild frame + fit per round ({naive_rounds} timed)", per_round, "per round")
    _row(f"naive bootstrap extrapolated to {n_boot} rounds", (per_round[0] * n_boot, per_round[1] * n_boot),
         f"(ours: {res.params['boot_failed']} failed rounds)")


def large_scenario(choix_max_iter: int) -> None:
    print("3,000 items × 300,000 votes (random pairs, pc5, 20 % ties, 300 raters)")
    t_sim, sim = _time(lambda: simulate.simulate_pairwise(PairwiseTruth(3000, tie_rate=0.2),
                                                          PairwisePanel(300),
                                                          PairwiseDesign(3000, 300_000),
                                                          seed=2))
    _row("simulate", t_sim)
    t_count, vc = _time(lambda: bt.count_votes(sim.votes))
    _row(f"count votes ({len(vc.pairs.i):,} distinct pairs)", t_count)
    kw: dict[str, Any] = dict(graded=False, anchor=None, elo=False, n_boot=0, seed=0, alpha=0.05,
                              sparse_solver=None)
    for ties in bt.TIE_MODELS:
        t, res = _time(lambda ties=ties: bt.fit(vc, ties=ties, ci="none", **kw), repeat=3)
        _row(f"our sparse Newton-CG fit, ties={ties}", t,
             f"(target ≤ 0.5 s; {res.params['iterations']} Newton steps)")
    t, res = _time(lambda: bt.fit(vc, ties="davidson", ci="cluster", **kw), repeat=3)
    _row("our fit + rater-clustered CIs (default)", t, "(target ≤ 1 s)")
    t, res = _time(lambda: bt.fit(vc, ties="davidson", ci="hessian", **kw))
    _row("our fit + Hessian covariance (dense 3,001² inverse)", t)
    decided = _winner_loser(sim.votes, vc.pairs.conditions)
    wins, _ = vc.pairs.matrices()
    t_ours, ours = _time(lambda: bt.fit_counts(vc.pairs.conditions, wins, None, ci="none"))
    _row("our fit_counts on the decided votes only (tie-free)", t_ours)
    t_ilsr, c1 = _time(lambda: choix.ilsr_pairwise(3000, decided, tol=1e-8, max_iter=choix_max_iter))
    _row(f"choix.ilsr_pairwise on the decided votes (max_iter={choix_max_iter})", t_ilsr,
         f"(max |Δ| vs ours {np.abs(ours.scores - (c1 - c1.mean())).max():.1e})")
    t_ours_votes, _ = _time(lambda: _count_and_fit(3000, decided))
    _row("our count + fit_counts on the same decided votes", t_ours_votes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--naive-rounds", type=int, default=3)
    parser.add_argument("--choix-max-iter", type=int, default=100)
    args = parser.parse_args()
    challenge_scenario(args.n_boot, args.naive_rounds)
    print()
    large_scenario(args.choix_max_iter)


if __name__ == "__main__":
    main()
