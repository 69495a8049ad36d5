"""Speed of the subject model (quality, rater bias and inconsistency by maximum likelihood).

Prints our fit time on 3,000 stimuli × 100 raters (300,000 ratings; target ≤ 2 s) next
to SUREAL's ``MLE_CO`` on the same data, and how closely the two agree. SUREAL is first
timed on a subset; it runs on the full data only when the subset predicts it will finish
within ``--sureal-budget`` seconds (otherwise the printout says it was a subset).

Usage::

    .venv/bin/python benchmarks/mos_speed.py [--contents 250] [--conditions 12] [--raters 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings

import numpy as np
import pandas as pd

from analysis.mos import mos
from analysis.normalize import subject_model, sureal_dataset
from analysis.screening import main_votes
from analysis.simulate import RatingsDesign, RatingsPanel, RatingsTruth, simulate_ratings


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    """Fastest of ``repeat`` runs (seconds) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def sureal_fit(df: pd.DataFrame) -> tuple[float, dict, list[tuple[str, str]]]:
    """SUREAL MLE_CO on a ratings frame; returns (seconds of run_modeling, result, stimulus keys)."""
    from sureal.dataset_reader import RawDatasetReader
    from sureal.subjective_model import MaximumLikelihoodEstimationModelContentOblivious

    ds, keys = sureal_dataset(df)
    model = MaximumLikelihoodEstimationModelContentOblivious(RawDatasetReader(ds))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        result = model.run_modeling()
    return time.perf_counter() - t0, result, keys


def agreement(ours, ref: dict, keys: list[tuple[str, str]]) -> str:
    stim = ours.stimuli.set_index(["content", "cond"]).loc[keys]
    raters = ours.raters.set_index("rater").loc[ref["observers"]]
    dq = np.max(np.abs(stim["quality"].to_numpy() - ref["quality_scores"]))
    db = np.max(np.abs(raters["bias"].to_numpy() - ref["observer_bias"]))
    dv = np.max(np.abs(raters["inconsistency"].to_numpy() - ref["observer_inconsistency"]))
    return f"max |Δquality| {dq:.2g}, |Δbias| {db:.2g}, |Δinconsistency| {dv:.2g} (score points)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditions", type=int, default=12)
    ap.add_argument("--contents", type=int, default=250)
    ap.add_argument("--raters", type=int, default=100)
    ap.add_argument("--subset", type=int, default=300, help="stimuli for the first SUREAL timing")
    ap.add_argument("--sureal-budget", type=float, default=120.0, help="seconds allowed for SUREAL on the full data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    n_stim = args.conditions * args.contents
    # Raters of similar precision (inconsistency Gamma-spread as analysis.simulate does, on a
    # 0..100 slider): SUREAL's ML and ours then have the same interior optimum to compare.
    sim = simulate_ratings(RatingsTruth(args.conditions, condition_sd=8, content_sd=4),
                           RatingsPanel(args.raters, rater_bias_sd=4, rater_inconsistency=8),
                           RatingsDesign(args.contents, method="slider100"),
                           seed=args.seed)
    votes = main_votes(sim.votes)
    print(f"subject model: {n_stim:,} stimuli × {args.raters} raters = {len(votes):,} ratings (slider100)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a collapse warning is reported below instead
        t_ml, fit_ml = best_of(lambda: subject_model(votes, variance="ml"))
        t_unb, fit_unb = best_of(lambda: subject_model(votes))
    print(f"  ours, variance='ml'       {t_ml:7.3f} s  ({fit_ml.n_iter} iterations, target ≤ 2 s)")
    print(f"  ours, variance='unbiased' {t_unb:7.3f} s  ({fit_unb.n_iter} iterations, default)")

    keys = votes[["content", "cond"]].drop_duplicates().sort_values(["content", "cond"])
    subset_keys = keys.iloc[: min(args.subset, len(keys))]
    subset = votes.merge(subset_keys, on=["content", "cond"])
    t_sub, _, _ = sureal_fit(subset)
    predicted = t_sub * len(keys) / len(subset_keys)
    print(f"  SUREAL MLE_CO on {len(subset_keys):,} stimuli: {t_sub:7.3f} s"
          f"  (→ ~{predicted:.0f} s predicted for all {n_stim:,})")
    if predicted <= args.sureal_budget:
        t_full, ref, ref_keys = sureal_fit(votes)
        print(f"  SUREAL MLE_CO, all {n_stim:,} stimuli: {t_full:7.3f} s  "
              f"({ref['num_iter']} iterations; ours 'ml' is {t_full / t_ml:.0f}× faster)")
        print(f"  agreement with ours 'ml': {agreement(fit_ml, ref, ref_keys)}")
    else:
        print(f"  SUREAL on the full data skipped (predicted > {args.sureal_budget:.0f} s budget); "
              f"subset figure above, ours 'ml' ~{predicted / t_ml:.0f}× faster by extrapolation")

    for by in (("cond",), ("content", "cond")):
        label = "per condition" if by == ("cond",) else "per (content, condition)"
        t_cl, _ = best_of(lambda by=by: mos(votes, by=by))
        t_bo, _ = best_of(lambda by=by: mos(votes, by=by, ci="bootstrap", n_boot=1000), repeat=1)
        print(f"MOS {label:<25} rater-clustered (default) {t_cl:7.3f} s · 1,000 rater-bootstrap rounds {t_bo:7.3f} s")


if __name__ == "__main__":
    main()
