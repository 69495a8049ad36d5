"""Interval coverage on simulated panels whose raters differ, for Bradley–Terry and MOS.

Run: ``.venv/bin/python benchmarks/coverage.py [--studies 200]`` (prints figures; asserts nothing).

This script has its own simulator on purpose: it must not share the model of
:mod:`analysis.simulate`, whose raters the fit was written against. Raters here differ in
three ways, at two strengths (``moderate``, ``strong``):

* **scale** (decisiveness) — rater r sees quality differences multiplied by
  ``a_r ~ LogNormal(0, σ_a)``;
* **taste** — a per-rater, per-condition offset ``b_rk ~ N(0, σ_b)`` that stays with the
  rater for all of their votes (what makes one rater's votes dependent);
* **bias** (ratings) — a per-rater offset of every score ``c_r ~ N(0, σ_c)``.

Pairwise: 8 conditions, 40 raters × 60 votes on random pairs of random contents; a vote
is "no preference" when the latent difference is within ``±η`` (ordinal logistic), else
the better side — about 20–30 % ties. Ratings (ACR, 1..5): 6 conditions × 8 contents, 24
raters who each rate every clip once; the score is the latent quality, scaled, biased,
plus noise, rounded and clipped to 1..5.

The truth is what the study estimates: the population value over raters of this kind —
for Bradley–Terry the Davidson fit to the *expected* vote counts of the rater population
(20,000 simulated raters; the fitted model is not the generating one, so this pseudo-true
value, not the latent ``q``, is the target), for MOS the expected score over the rater
population on the study's contents. Coverage = share of (study, condition) whose interval
contains the truth; the target is 95 % (93–97 % counts as honest with 200 studies × 8
conditions).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from analysis import bradley_terry as bt
from analysis import mos

HETEROGENEITY = {"moderate": (0.3, 0.3, 0.3), "strong": (0.6, 0.6, 0.6)}  # σ_a, σ_b, σ_c


@dataclass(frozen=True)
class Design:
    conditions: int = 8
    contents: int = 20
    raters: int = 40
    votes_per_rater: int = 60
    eta: float = 0.5  # tie half-width on the latent scale
    rating_conditions: int = 6
    rating_contents: int = 8
    rating_raters: int = 24
    noise: float = 0.7


def _quality(n: int) -> np.ndarray:
    return np.linspace(-1.2, 1.2, n)


def _pairwise_truth(design: Design, q: np.ndarray, sd: tuple[float, float, float], rng) -> np.ndarray:
    """Davidson fit to the expected counts of the rater population (pseudo-true scores)."""
    m = 20_000
    a = rng.lognormal(0.0, sd[0], m)[:, None]
    b = rng.normal(0.0, sd[1], (m, len(q)))
    i, j = np.triu_indices(len(q), 1)
    d = a * (q[i] - q[j]) + b[:, i] - b[:, j]
    p_i, p_j = expit(d - design.eta).mean(axis=0), expit(-d - design.eta).mean(axis=0)
    n = len(q)
    wins, ties = np.zeros((n, n)), np.zeros((n, n))
    scale = 1e6  # expected counts of a very large study: the fit is the population value
    wins[i, j], wins[j, i], ties[i, j] = scale * p_i, scale * p_j, scale * (1 - p_i - p_j)
    names = [f"C{k}" for k in range(n)]
    return bt.fit_counts(names, wins, ties, tie_model="davidson", ci="none").scores


def _pairwise_study(design: Design, q: np.ndarray, sd: tuple[float, float, float], rng) -> pd.DataFrame:
    n, r, v = len(q), design.raters, design.votes_per_rater
    a = rng.lognormal(0.0, sd[0], r)
    b = rng.normal(0.0, sd[1], (r, n))
    rater = np.repeat(np.arange(r), v)
    ci = rng.integers(0, n, r * v)
    cj = (ci + rng.integers(1, n, r * v)) % n  # a different condition, uniformly
    d = a[rater] * (q[ci] - q[cj]) + b[rater, ci] - b[rater, cj] + rng.logistic(size=r * v)
    pref = np.where(d > design.eta, 1, np.where(d < -design.eta, -1, 0))
    names = np.array([f"C{k}" for k in range(n)])
    raters = np.array([f"r{k:03d}" for k in range(r)])
    return pd.DataFrame({
        "study": "cov", "rater": raters[rater], "session": raters[rater], "trial": np.arange(r * v),
        "content": [f"c{k}" for k in rng.integers(0, design.contents, r * v)],
        "cond_a": names[ci], "cond_b": names[cj], "pref": pref, "method": "pc5", "reason": None,
        "shown_left": np.where(rng.random(r * v) < 0.5, "a", "b"), "repeat_of": None, "gold_expected": None,
        "answered_at": "2026-01-01T00:00:00Z", "watch_ms": 10_000, "stalls": 0,
    })


def _ratings_scores(design: Design, q: np.ndarray, sd, a, b, c, rng) -> np.ndarray:
    """Scores (raters, conditions, contents) before rounding, for given rater effects."""
    latent = 3.0 + a[:, None, None] * (q[None, :, :] + b[:, :, None]) + c[:, None, None]
    return latent + rng.normal(0.0, design.noise, latent.shape)


def _round(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 1, 5)


def _ratings_study(design: Design, sd, rng) -> tuple[pd.DataFrame, np.ndarray]:
    k, n_c, r = design.rating_conditions, design.rating_contents, design.rating_raters
    q = _quality(k)[:, None] + rng.normal(0.0, 0.4, (k, n_c))  # content × condition quality
    # Truth: the population's expected score, by Monte Carlo over many raters of this kind.
    m = 20_000
    pop = _ratings_scores(design, q, sd, rng.lognormal(0, sd[0] / 2, m), rng.normal(0, sd[1] / 2, (m, k)),
                          rng.normal(0, sd[2], m), rng)
    truth = _round(pop).mean(axis=(0, 2))
    scores = _round(_ratings_scores(design, q, sd, rng.lognormal(0, sd[0] / 2, r),
                                    rng.normal(0, sd[1] / 2, (r, k)), rng.normal(0, sd[2], r), rng))
    ri, ki, ci = np.meshgrid(np.arange(r), np.arange(k), np.arange(n_c), indexing="ij")
    frame = pd.DataFrame({
        "study": "cov", "rater": [f"r{x:03d}" for x in ri.ravel()], "session": [f"r{x:03d}" for x in ri.ravel()],
        "trial": np.arange(ri.size), "content": [f"c{x}" for x in ci.ravel()], "cond": [f"C{x}" for x in ki.ravel()],
        "score": scores.ravel().astype(int), "method": "acr5", "repeat_of": None, "gold_expected": None,
        "answered_at": "2026-01-01T00:00:00Z", "watch_ms": 10_000, "stalls": 0,
    })
    return frame, truth


def _covered(frame: pd.DataFrame, truth: np.ndarray) -> np.ndarray:
    return ((frame["ci_low"].to_numpy() <= truth) & (truth <= frame["ci_high"].to_numpy()))


def pairwise_coverage(design: Design, level: str, studies: int, n_boot: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sd = HETEROGENEITY[level]
    q = _quality(design.conditions)
    truth = _pairwise_truth(design, q, sd, rng)
    hits: dict[str, list[np.ndarray]] = {"cluster": [], "bootstrap": [], "hessian": []}
    refused = 0
    for _ in range(studies):
        votes = _pairwise_study(design, q, sd, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = bt.fit(votes, ci="bootstrap", n_boot=n_boot, seed=int(rng.integers(1 << 31)))
        refused += boot.ci != "bootstrap"
        for method in hits:
            if method == "bootstrap" and boot.ci != "bootstrap":
                continue
            hits[method].append(_covered(boot.to_frame(method), truth))
    out = {m: float(np.concatenate(h).mean()) for m, h in hits.items()}
    out["bootstrap_refused"] = refused
    return out


def ratings_coverage(design: Design, level: str, studies: int, n_boot: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sd = HETEROGENEITY[level]
    hits: dict[str, list[np.ndarray]] = {"cluster": [], "bootstrap": [], "t": []}
    for _ in range(studies):
        frame, truth = _ratings_study(design, sd, rng)
        for method in hits:
            table = mos.mos(frame, ci=method, n_boot=n_boot, seed=int(rng.integers(1 << 31))).to_frame()
            hits[method].append(_covered(table, truth))
    return {m: float(np.concatenate(h).mean()) for m, h in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    design = Design()
    print(f"coverage of nominal 95% intervals, {args.studies} studies per row "
          f"(BT: {design.conditions} conditions, {design.raters} raters × {design.votes_per_rater} votes; "
          f"MOS: {design.rating_conditions} conditions × {design.rating_contents} contents, "
          f"{design.rating_raters} raters)")
    print(f"  {'model':<16}{'raters differ':<15}{'cluster (default)':>19}{'bootstrap':>11}{'model-based':>13}")
    for level in HETEROGENEITY:
        t0 = time.perf_counter()
        p = pairwise_coverage(design, level, args.studies, args.n_boot, args.seed)
        note = f"  ({p['bootstrap_refused']:.0f} bootstraps refused; {time.perf_counter() - t0:.0f} s)"
        print(f"  {'Bradley–Terry':<16}{level:<15}{p['cluster']:>18.1%}{p['bootstrap']:>11.1%}"
              f"{p['hessian']:>13.1%}{note}")
    for level in HETEROGENEITY:
        t0 = time.perf_counter()
        r = ratings_coverage(design, level, args.studies, args.n_boot, args.seed + 1)
        print(f"  {'MOS':<16}{level:<15}{r['cluster']:>18.1%}{r['bootstrap']:>11.1%}{r['t']:>13.1%}"
              f"  ({time.perf_counter() - t0:.0f} s)")
    print("  model-based = Hessian (BT) / Student-t (MOS): votes treated as independent")


if __name__ == "__main__":
    main()
