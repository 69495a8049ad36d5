"""Active pair selection against a balanced design: votes until the ranking is resolved, and batch timings.

For two truths —

* **12 conditions with the NTIRE 2025 VQE challenge's spread**: the published Bradley–Terry
  strengths of ``combined_midpoint_final.txt`` (column ``vote`` of its "per-method bradley
  terry scores" table, read with :func:`analysis.aggregate.read_ntire`), as centred log-strengths;
* **40 conditions**: adjacent gaps spread evenly over 0.08–0.22 BT units (mean 0.15, total
  range 5.85), in a fixed shuffled order —

it simulates studies and counts the votes until every adjacent pair of the *true* ranking is
separated (by :func:`analysis.active.stopping_state`, i.e. :func:`analysis.bradley_terry.fit_counts`
+ :func:`analysis.ranking.rank`, Holm at α = 0.05) in the true order:

* **balanced**: round-robin, one vote on every pair per round (checked on a geometric grid of
  rounds, ×1.25, then bisected to the round);
* **active**: :func:`analysis.active.next_pairs` batches of at least ``--batch`` (100) comparisons,
  growing to ``--grow`` (10 %) of the votes so far (many concurrent raters), checked after every
  batch and bisected to the vote inside the last batch.

Votes are drawn directly (not with :mod:`analysis.simulate`, whose per-vote frames would make the
≈ 10⁷ votes of a run too slow): each vote is a Davidson draw (tie share ``--tie-rate`` between
equal conditions) at the difference ``c_r · (s_i − s_j)``, ``c_r`` the discrimination of the
vote's rater (log-normal, sd ``--rater-sd``; a rater casts 10 votes). A study that is not
resolved within the cap reports the RMSE of the scores at the cap instead.

The timing part chooses one batch of 100 for 100 raters at once (``next_pairs(k=100)``) for 12 and
200 conditions, from a state of 50 votes per condition; the targets are ≤ 50 ms and ≤ 1 s.

Run: ``.venv/bin/python benchmarks/active_sampling.py [--studies 50] [--workers 2]``. Dense
algebra on ≤ 200×200 matrices is slower with a multithreaded BLAS on a busy machine, so the
benchmark asks for one BLAS thread per process (as a server with one request per core would).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analysis import active, aggregate  # noqa: E402
from analysis import bradley_terry as bt  # noqa: E402

NTIRE_FILE = "combined_midpoint_final.txt"
VOTES_PER_RATER = 10


def ntire_scores() -> np.ndarray:
    """Centred log of the published overall BT strengths (``vote``), best first."""
    candidates = [REPO.parent / "shared" / "data" / "ntire2025-vqe", Path("/work/shared/data/ntire2025-vqe")]
    for folder in candidates:
        if (folder / NTIRE_FILE).is_file():
            pub = aggregate.read_ntire(folder / NTIRE_FILE).published
            s = np.sort(np.log(pub["vote"].to_numpy(dtype=float)))[::-1]
            return s - s.mean()
    raise SystemExit(f"no {NTIRE_FILE} in {', '.join(map(str, candidates))}")


def spread_scores(n: int = 40, low: float = 0.08, high: float = 0.22, seed: int = 7) -> np.ndarray:
    """``n`` scores, best first, whose adjacent gaps are ``linspace(low, high)`` in a fixed shuffled order."""
    gaps = np.random.default_rng(seed).permutation(np.linspace(low, high, n - 1))
    s = -np.concatenate([[0.0], np.cumsum(gaps)])
    return s - s.mean()


@dataclass(frozen=True)
class Setting:
    tie_rate: float
    rater_sd: float
    batch: int
    grow: float
    cap: int


def draw(rng: np.random.Generator, s: np.ndarray, i: np.ndarray, j: np.ndarray, st: Setting) -> np.ndarray:
    """Outcomes of votes on pairs (i, j): 0 = i wins, 1 = tie, 2 = j wins (Davidson, rater discrimination)."""
    n_raters = -(-len(i) // VOTES_PER_RATER)
    c = np.exp(st.rater_sd * rng.standard_normal(n_raters))[np.arange(len(i)) // VOTES_PER_RATER]
    pw, pt, _ = active._davidson_probs(c * (s[i] - s[j]), active.nu_from_tie_rate(st.tie_rate))
    u = rng.random(len(i))
    return np.where(u < pw, 0, np.where(u < pw + pt, 1, 2))


def matrices(n: int, i: np.ndarray, j: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Win and (symmetric) tie matrices of votes."""
    w = np.zeros((n, n))
    t = np.zeros((n, n))
    np.add.at(w, (i[out == 0], j[out == 0]), 1)
    np.add.at(w, (j[out == 2], i[out == 2]), 1)
    np.add.at(t, (i[out == 1], j[out == 1]), 1)
    return w, t + t.T


def resolved(w: np.ndarray, t: np.ndarray, truth_order: tuple[int, ...]) -> bool:
    """Every adjacent pair of the true ranking separated, in the true order."""
    st = active.stopping_state(w, t, votes_used=int(w.sum() + t.sum() / 2), budget=None)
    return st.done and st.order == truth_order


def rmse(w: np.ndarray, t: np.ndarray, s: np.ndarray) -> float:
    """RMSE of the fitted (centred) scores against the truth."""
    try:
        fit = bt.fit_counts([str(k) for k in range(len(s))], w, t, ci="none")
    except (bt.ComparisonGraphError, ValueError):
        return float("nan")
    return float(np.sqrt(np.mean((fit.scores - (s - s.mean())) ** 2)))


def _pair_matrices(n: int, iu: np.ndarray, ju: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Win and tie matrices of per-pair counts ``(P, 3)``: i wins, ties, j wins."""
    w = np.zeros((n, n))
    t = np.zeros((n, n))
    w[iu, ju], w[ju, iu] = counts[:, 0], counts[:, 2]
    t[iu, ju] = t[ju, iu] = counts[:, 1]
    return w, t


def balanced_run(s: np.ndarray, st: Setting, seed: int) -> tuple[int, float]:
    """Votes until resolved with a round-robin design (or the cap), and the RMSE there."""
    rng = np.random.default_rng(seed)
    n = len(s)
    truth = tuple(int(k) for k in np.argsort(-s, kind="stable"))
    iu, ju = np.triu_indices(n, k=1)
    n_pairs = len(iu)
    max_rounds = max(1, st.cap // n_pairs)
    nu = active.nu_from_tie_rate(st.tie_rate)
    cum = np.zeros((1, n_pairs, 3), dtype=np.int32)  # cum[r] = per-pair counts after r rounds

    def extend(to: int) -> None:
        nonlocal cum
        rounds = to - (len(cum) - 1)
        # Each round: every pair once, in a random order, raters taking VOTES_PER_RATER votes in turn.
        pos = np.argsort(rng.random((rounds, n_pairs)), axis=1).argsort(axis=1)
        rater = (np.arange(rounds)[:, None] * n_pairs + pos) // VOTES_PER_RATER
        c = np.exp(st.rater_sd * rng.standard_normal(int(rater.max()) + 1))[rater]
        pw, pt, _ = active._davidson_probs(c * (s[iu] - s[ju])[None, :], nu)
        u = rng.random((rounds, n_pairs))
        out = np.where(u < pw, 0, np.where(u < pw + pt, 1, 2))
        step = np.cumsum(np.eye(3, dtype=np.int32)[out], axis=0) + cum[-1]
        cum = np.concatenate([cum, step])

    def ok(r: int) -> bool:
        return resolved(*_pair_matrices(n, iu, ju, cum[r]), truth)

    bad, r = 0, 0
    while r < max_rounds:
        r = min(max_rounds, max(r + 1, math.ceil(r * 1.25)))
        extend(r)
        if ok(r):
            lo, hi = bad, r  # resolved at hi, not at lo: bisect to the round
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            return hi * n_pairs, rmse(*_pair_matrices(n, iu, ju, cum[hi]), s)
        bad = r
    return -1, rmse(*_pair_matrices(n, iu, ju, cum[-1]), s)


def active_run(s: np.ndarray, st: Setting, seed: int) -> tuple[int, float]:
    """Votes until resolved with next_pairs batches (or the cap), and the RMSE there."""
    rng = np.random.default_rng(seed)
    n = len(s)
    truth = tuple(int(k) for k in np.argsort(-s, kind="stable"))
    w, t = np.zeros((n, n)), np.zeros((n, n))
    used = 0
    while used < st.cap:
        k = min(st.cap - used, max(st.batch, math.ceil(st.grow * used)))
        picks = np.array(active.next_pairs(w, t, k, seed=int(rng.integers(2**31))), dtype=np.int64)
        flip = rng.random(k) < 0.5  # which side the rater sees first does not matter to the model
        i = np.where(flip, picks[:, 1], picks[:, 0])
        j = np.where(flip, picks[:, 0], picks[:, 1])
        out = draw(rng, s, i, j, st)
        w_new, t_new = matrices(n, i, j, out)
        if resolved(w + w_new, t + t_new, truth):
            lo, hi = 0, k  # resolved with all k, not with none: bisect to the vote
            while hi - lo > 1:
                mid = (lo + hi) // 2
                wm, tm = matrices(n, i[:mid], j[:mid], out[:mid])
                if resolved(w + wm, t + tm, truth):
                    hi = mid
                else:
                    lo = mid
            wm, tm = matrices(n, i[:hi], j[:hi], out[:hi])
            return used + hi, rmse(w + wm, t + tm, s)
        w, t, used = w + w_new, t + t_new, used + k
    return -1, rmse(w, t, s)


def one_study(args: tuple[str, np.ndarray, Setting, int]) -> tuple[str, int, int, float, float]:
    design, s, st, seed = args
    run = balanced_run if design == "balanced" else active_run
    votes, err = run(s, st, seed)
    return design, seed, votes, err, 0.0


def compare(name: str, s: np.ndarray, st: Setting, studies: int, workers: int) -> None:
    print(f"\n## {name}: {len(s)} conditions, adjacent gaps {np.round(-np.diff(np.sort(s)[::-1]), 3).tolist()}",
          flush=True)
    print(f"   tie rate {st.tie_rate}, rater sd {st.rater_sd}, active batch ≥ {st.batch} (grows to "
          f"{st.grow:.0%} of the votes so far), cap {st.cap:,} votes, {studies} studies each", flush=True)
    results: dict[str, list[tuple[int, float]]] = {"balanced": [], "active": []}
    jobs = [(d, s, st, 1000 * k + 17) for k in range(studies) for d in ("balanced", "active")]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, (design, _seed, votes, err, _) in enumerate(pool.map(one_study, jobs), 1):
            results[design].append((votes, err))
            if done % 20 == 0 or done == len(jobs):
                b = [v for v, _ in results["balanced"] if v > 0]
                a = [v for v, _ in results["active"] if v > 0]
                print(f"   {done}/{len(jobs)} runs ({time.perf_counter() - t0:.0f} s): balanced mean "
                      f"{np.mean(b) if b else float('nan'):,.0f}, active mean {np.mean(a) if a else float('nan'):,.0f}",
                      flush=True)
    for design in ("balanced", "active"):
        v = np.array([x for x, _ in results[design]])
        ok = v[v > 0]
        e = np.array([x for _, x in results[design]])
        print(f"   {design:8s}: resolved in {len(ok)}/{len(v)} studies; votes mean {ok.mean():,.0f} "
              f"(median {np.median(ok):,.0f}, sd {ok.std(ddof=1) if len(ok) > 1 else 0:,.0f}); RMSE there "
              f"{np.nanmean(e):.3f}" if len(ok) else f"   {design}: never resolved within the cap; RMSE at the cap "
              f"{np.nanmean(e):.3f}", flush=True)
    b = np.array([x for x, _ in results["balanced"]], dtype=float)
    a = np.array([x for x, _ in results["active"]], dtype=float)
    if (b > 0).all() and (a > 0).all():
        print(f"   active needs {1 - a.mean() / b.mean():.1%} fewer votes than balanced (target ≥ 40 %)", flush=True)


def timings() -> None:
    print("\n## Time to choose one batch of 100 (next_pairs, k = 100), from 50 votes per condition", flush=True)
    for n, target in ((12, 0.05), (200, 1.0)):
        rng = np.random.default_rng(n)
        s = np.sort(rng.normal(0, 1, n))[::-1]
        iu, ju = np.triu_indices(n, k=1)
        c = rng.integers(0, len(iu), 50 * n)
        out = draw(rng, s, iu[c], ju[c], Setting(0.2, 0.3, 100, 0.1, 0))
        w, t = matrices(n, iu[c], ju[c], out)
        active.next_pairs(w, t, 100, seed=0)  # warm-up
        times = []
        for rep in range(5 if n > 100 else 20):
            t0 = time.perf_counter()
            active.next_pairs(w, t, 100, seed=rep)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        print(f"   {n:3d} conditions: median {med * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
              f"(target ≤ {target * 1000:.0f} ms: {'met' if med <= target else 'MISSED'})", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--studies", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--grow", type=float, default=0.1)
    p.add_argument("--tie-rate", type=float, default=0.2)
    p.add_argument("--rater-sd", type=float, default=0.3)
    p.add_argument("--only", choices=("12", "40", "timing"), default=None)
    a = p.parse_args(argv)
    if a.only in (None, "timing"):
        timings()
    if a.only in (None, "12"):
        compare("NTIRE 2025 spread", ntire_scores(),
                Setting(a.tie_rate, a.rater_sd, a.batch, a.grow, 2_000_000), a.studies, a.workers)
    if a.only in (None, "40"):
        compare("40 conditions", spread_scores(),
                Setting(a.tie_rate, a.rater_sd, a.batch, a.grow, 5_000_000), a.studies, a.workers)


if __name__ == "__main__":
    main()
