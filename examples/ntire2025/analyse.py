"""Re-analyse the published NTIRE 2025 VQE subjective results with panelrank.

For each of the three result files (mid-point, final, combined) this script

1. reads the per-pair aggregates (``nos`` votes and the mean vote ``DMOS``) with
   :func:`analysis.aggregate.read_ntire`,
2. fits Bradley–Terry scores with 95% intervals through :func:`analysis.report.analyze`
   (a pair table: Hessian intervals, no rater bootstrap),
3. compares our order with the published one and finds the statistically tied groups,
4. draws ONE Figure-4-style interval plot per table: our scores and intervals next to the
   published strengths (log, centred) on top, the published per-factor strengths below,
5. measures how the vote-to-win mapping (tie model, assumed tie share, weak vs strong
   votes) moves the spread of the scores.

Usage (from the repository root)::

    .venv/bin/python examples/ntire2025/analyse.py [DATA_DIR] [--out DIR]

``DATA_DIR`` defaults to ``../shared/data/ntire2025-vqe`` next to the repository root.
Outputs in ``--out`` (default ``examples/ntire2025/output``): ``<table>_intervals.html``,
``<table>_scores.csv``, ``spread.csv`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import analysis  # noqa: E402
from analysis import aggregate, plots, report  # noqa: E402
from analysis import bradley_terry as bt  # noqa: E402

#: The three published tables: short name → file.
TABLES = {"mid_point": "mid_point.txt", "final": "final.txt", "combined": "combined_midpoint_final.txt"}
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ntire2025-vqe"
DEFAULT_OUT = Path(__file__).resolve().parent / "output"
#: Published per-factor columns → our reason names (PROTOCOL.md §1).
FACTORS = {"color": "colours", "brightness": "brightness", "skintone": "skin tone"}
#: Default mean-vote mapping (see analysis.aggregate): a fifth "no preference", weak and strong equally common.
TIE_SHARE, STRENGTH = 0.2, 1.5


@dataclass(frozen=True)
class TableResult:
    """One table re-analysed.

    Attributes
    ----------
    name : str
    result : report.AnalysisResult
    published_order, our_order : list of str
    comparison : DataFrame
        ``condition, name, score, ci_low, ci_high, group, published`` (published =
        centred log of the published strength), our order.
    kendall_tau : float
        Between our scores and the published log-strengths.
    slope : float
        Least-squares slope of our scores on the published ones (1 = same spread).
    """

    name: str
    result: report.AnalysisResult
    published_order: list[str]
    our_order: list[str]
    comparison: pd.DataFrame
    kendall_tau: float
    slope: float

    @property
    def order_matches(self) -> bool:
        return self.our_order == self.published_order

    @property
    def groups(self) -> list[list[str]]:
        return self.result.groups


def resolve_data_dir(path: str | Path | None = None) -> Path:
    """The data directory: the argument (relative to the working directory), or the default.

    Without an argument, ``../shared/data/ntire2025-vqe`` is looked for next to the repository
    root (where this file lives), then next to the working directory.
    """
    if path is not None:
        candidates = [Path(path)]  # an explicit path is never silently replaced by the default
    else:
        candidates = [DEFAULT_DATA, Path.cwd().parent / "shared" / "data" / "ntire2025-vqe"]
    for c in candidates:
        if all((c / f).is_file() for f in TABLES.values()):
            return c.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no NTIRE 2025 VQE result files ({', '.join(TABLES.values())}) in: {looked}")


def _log_centred(strength: pd.Series) -> np.ndarray:
    x = np.log(strength.to_numpy(dtype=float))
    return x - x.mean()


def analyse_table(path: str | Path, *, name: str | None = None, ties: str = "davidson",
                  tie_share: float = TIE_SHARE, strength: float = STRENGTH, graded: bool = False) -> TableResult:
    """Fit one result file and line it up with the published BT strengths.

    Parameters
    ----------
    path : path
        An NTIRE ``results/*.txt`` file.
    name : str, optional
        Short name of the table (default: the file name without suffix).
    ties, graded : str, bool
        Bradley–Terry tie model and whether a vote's strength counts.
    tie_share, strength : float
        The mean-vote mapping (:func:`analysis.aggregate.from_pair_table`).

    Returns
    -------
    TableResult
    """
    nt = aggregate.read_ntire(path)
    pub = nt.published.assign(score=lambda d: _log_centred(d["vote"]))
    opts = report.AnalysisOptions(ties=ties, graded=graded, pair_table={"tie_share": tie_share, "strength": strength},
                                  published=pub[["condition", "score"]])
    res = report.analyze(nt.pairs[["cond_a", "cond_b", "n", "mean_pref"]], opts)
    table = res.ranking.table[["condition", "score", "ci_low", "ci_high", "group"]]
    comp = table.merge(pub[["condition", "name", "score"]].rename(columns={"score": "published"}), on="condition")
    comp = comp[["condition", "name", "score", "ci_low", "ci_high", "group", "published"]]
    ours, theirs = comp["score"].to_numpy(), comp["published"].to_numpy()
    # Both are centred, so a slope through the origin compares the spreads.
    slope = float(ours @ theirs / (theirs @ theirs))
    tau = float(stats.kendalltau(ours, theirs).statistic)
    published_order = list(pub.sort_values("score", ascending=False, kind="stable")["condition"])
    return TableResult(name or Path(path).stem, res, published_order, list(comp["condition"]), comp, tau, slope)


def _published_factors(path: Path) -> dict[str, pd.DataFrame]:
    pub = aggregate.read_ntire(path).published
    return {f"{ours} (published)": pd.DataFrame({"condition": pub["condition"], "score": _log_centred(pub[col])})
            for col, ours in FACTORS.items() if col in pub.columns}


def figure(tr: TableResult, path: Path):
    """ONE interval plot per table (Figure 4 layout): ours vs published on top, published factors below."""
    return plots.interval_plot(
        tr.comparison[["condition", "score", "ci_low", "ci_high"]], _published_factors(path), tr.result.published,
        title=f"NTIRE 2025 VQE — {tr.name}: our Bradley–Terry scores (95% CI) vs the published ones",
        published_name="published (log strength, centred)", name="ours (overall)",
    )


#: The mappings compared in spread.csv: (label, tie model, tie_share, strength, graded).
MAPPINGS: tuple[tuple[str, str, float, float, bool], ...] = (
    ("default: davidson, 20% ties, strength 1.5", "davidson", 0.2, 1.5, False),
    ("rao-kupper, 20% ties, strength 1.5", "rao-kupper", 0.2, 1.5, False),
    ("split ties, 20% ties, strength 1.5", "split", 0.2, 1.5, False),
    ("davidson, graded (strong = 2 wins)", "davidson", 0.2, 1.5, True),
    ("split, graded", "split", 0.2, 1.5, True),
    ("no ties, strength 1.5", "davidson", 0.0, 1.5, False),
    ("davidson, 40% ties, strength 1.5", "davidson", 0.4, 1.5, False),
    ("split, 40% ties, strength 1.5", "split", 0.4, 1.5, False),
    ("davidson, 20% ties, all weak (strength 1)", "davidson", 0.2, 1.0, False),
    ("davidson, 20% ties, all strong (strength 2)", "davidson", 0.2, 2.0, False),
    ("sign only: no ties, all weak", "davidson", 0.0, 1.0, False),
    ("rao-kupper, 40% ties, graded", "rao-kupper", 0.4, 1.5, True),
)


def _fit_spread(pt: aggregate.PairTable, ties: str, pub: pd.Series) -> dict[str, float]:
    res = bt.fit_counts(pt.conditions, pt.wins, pt.ties, tie_model=ties, n_votes=pt.n_votes)
    s = pd.Series(res.scores, index=list(res.conditions)).reindex(pub.index).to_numpy()
    p = pub.to_numpy()
    return {"spread": float(s.max() - s.min()), "slope": float(s @ p / (p @ p)),
            "kendall_tau": float(stats.kendalltau(s, p).statistic), "median_se": float(np.median(res.se))}


def moment_counts(pairs: pd.DataFrame, strong_share: float = 0.5, graded: bool = False) -> pd.DataFrame:
    """Win/tie/loss counts per pair matched to the published mean *and* spread of the votes.

    ``ci_95%`` is read as ``1.96·sd/√n``, giving each pair's second moment
    ``E[pref²] = sd² + mean²``. If a share ``q`` of the decided votes is strong (|pref|
    = 2) whatever their direction, then ``E[pref²] = (1−τ)(1+3q)`` fixes the pair's tie
    share ``τ`` and ``E[pref] = (1−τ)(1+q)(2p_A−1)`` its win share ``p_A``.

    Returns
    -------
    DataFrame
        ``cond_a, cond_b, wins_a, ties, wins_b, tie_share`` (a win/tie/loss pair table).
    """
    n = pairs["n"].to_numpy(dtype=float)
    mean = pairs["mean_pref"].to_numpy(dtype=float)
    sd = pairs["ci95"].to_numpy(dtype=float) * np.sqrt(n) / 1.96
    m2 = sd**2 + mean**2
    tau = np.clip(1 - m2 / (1 + 3 * strong_share), 0.0, 0.95)
    decided = 1 - tau
    p_a = np.clip(0.5 * (1 + mean / (decided * (1 + strong_share))), 0.0, 1.0)
    weight = (1 + strong_share) if graded else 1.0
    return pd.DataFrame({"cond_a": pairs["cond_a"], "cond_b": pairs["cond_b"],
                         "wins_a": n * decided * p_a * weight, "ties": n * tau,
                         "wins_b": n * decided * (1 - p_a) * weight, "tie_share": tau})


def spread_table(path: str | Path) -> pd.DataFrame:
    """How the vote-to-win mapping moves the scores of one table.

    Returns
    -------
    DataFrame
        One row per mapping: ``mapping, ties, tie_share, strength, graded, spread``
        (best − worst score), ``slope`` (on the published log-strengths), ``kendall_tau``,
        ``median_se``; the first row is the published table itself.
    """
    nt = aggregate.read_ntire(path)
    pub = pd.Series(_log_centred(nt.published["vote"]), index=nt.published["condition"])
    rows = [{"mapping": "published", "ties": "", "tie_share": np.nan, "strength": np.nan, "graded": False,
             "spread": float(pub.max() - pub.min()), "slope": 1.0, "kendall_tau": 1.0, "median_se": np.nan}]
    for label, ties, tie_share, strength, graded in MAPPINGS:
        pt = nt.pair_table(tie_share=tie_share, strength=strength, graded=graded)
        rows.append({"mapping": label, "ties": ties, "tie_share": tie_share, "strength": strength,
                     "graded": graded, **_fit_spread(pt, ties, pub), "clipped": pt.assumption["clipped"]})
    matched = moment_counts(nt.pairs)
    pt = aggregate.from_pair_table(matched.drop(columns="tie_share"), method="pc5")
    tau = matched["tie_share"]
    for ties in ("davidson", "split"):
        rows.append({"mapping": f"{ties}, ties and strength matched to each pair's published sd (q = 0.5)",
                     "ties": ties, "tie_share": float(tau.mean()), "strength": 1.5, "graded": False,
                     **_fit_spread(pt, ties, pub), "clipped": 0})
    out = pd.DataFrame(rows)
    out["clipped"] = out["clipped"].fillna(0).astype(int)
    return out


def _md_table(df: pd.DataFrame, floats: str = "{:.3f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [floats.format(v) if isinstance(v, float) and not np.isnan(v) else ("" if isinstance(v, float)
                 else str(v)) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(data_dir: str | Path | None = None, out_dir: str | Path = DEFAULT_OUT) -> dict[str, TableResult]:
    """Analyse the three tables, write the plots, CSVs and ``summary.md``; return the results."""
    data = resolve_data_dir(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, TableResult] = {}
    md = ["# NTIRE 2025 VQE — re-analysis summary", "", f"Data: `{data}`; panelrank analysis "
          f"{analysis.__version__}. Mapping: davidson ties, tie_share={TIE_SHARE}, strength={STRENGTH}.", ""]
    spreads = []
    for name, file in TABLES.items():
        tr = analyse_table(data / file, name=name)
        results[name] = tr
        fig = figure(tr, data / file)
        (out / f"{name}_intervals.html").write_text(plots.to_html(fig), encoding="utf-8")
        tr.comparison.to_csv(out / f"{name}_scores.csv", index=False)
        sp = spread_table(data / file).assign(table=name)
        spreads.append(sp)
        groups = " · ".join("{" + ", ".join(g) + "}" for g in tr.groups)
        md += [f"## {name} ({len(tr.our_order)} conditions)", "",
               f"- published order: {' > '.join(tr.published_order)}",
               f"- our order:       {' > '.join(tr.our_order)} — **{'match' if tr.order_matches else 'DIFFERENT'}**"
               f" (Kendall τ = {tr.kendall_tau:.3f}, slope on published = {tr.slope:.3f})",
               f"- statistically tied groups (Holm, α = 0.05): {groups}", "",
               _md_table(tr.comparison), "", "Spread under each vote-to-win mapping:", "",
               _md_table(sp.drop(columns="table")), ""]
    pd.concat(spreads, ignore_index=True).to_csv(out / "spread.csv", index=False)
    (out / "summary.md").write_text("\n".join(md), encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", nargs="?", default=None, help="folder with the three NTIRE result files")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        results = run(args.data_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, tr in results.items():
        status = "matches" if tr.order_matches else "DIFFERS FROM"
        print(f"{name:10s} {' > '.join(tr.our_order)}  ({status} published; tau {tr.kendall_tau:.2f}, "
              f"slope {tr.slope:.2f}; groups {[g for g in tr.groups if len(g) > 1] or 'none tied'})")
    print(f"wrote {args.out}/(*_intervals.html, *_scores.csv, spread.csv, summary.md)")
    return 0 if all(tr.order_matches for tr in results.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
