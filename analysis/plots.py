"""Plotly figures of an analysis: intervals, win rates, rater quality, MOS per content.

Every function takes plain frames (the ``.to_frame()`` of a result) and returns a
``plotly.graph_objects.Figure``; nothing is written or shown. :func:`to_html` turns a
figure into a standalone page with plotly.js embedded (no network needed to view it);
:mod:`analysis.report` embeds several figures in one page with plotly.js included once.

The interval plot follows the 2025 VQE challenge's Figure 4: conditions on the x axis
sorted by score, a point per score with its 95% interval, the overall fit on top and
the fits per decision factor (colours / brightness / skin tone) below, drawn side by
side around each condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import bradley_terry

#: Colour-blind-safe palette (Okabe–Ito), used in order for factors and conditions.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
#: Horizontal room (in category widths) shared by the per-factor points of one condition.
FACTOR_WIDTH = 0.6
_KEPT_COLOUR = "#0072B2"
_DROPPED_COLOUR = "#D55E00"


def to_html(fig: go.Figure, *, include_plotlyjs: bool = True, full_html: bool = True) -> str:
    """A figure as HTML with plotly.js embedded inline (viewable offline).

    Parameters
    ----------
    fig : Figure
    include_plotlyjs : bool
        Embed the plotly.js bundle (≈ 4 MB). Pass ``False`` for the second and later
        figures of a page that already carries it.
    full_html : bool
        A complete ``<html>`` document (``True``) or a ``<div>`` fragment.

    Returns
    -------
    str
    """
    # Never "cdn": a report must open on an air-gapped machine.
    return fig.to_html(include_plotlyjs=bool(include_plotlyjs), full_html=full_html,
                       include_mathjax=False, config={"displaylogo": False, "responsive": True})


def _error_bars(frame: pd.DataFrame) -> dict | None:
    """Asymmetric error bars from ``ci_low``/``ci_high`` (bootstrap intervals need not be symmetric)."""
    if not {"ci_low", "ci_high"} <= set(frame.columns):
        return None
    lo = frame["ci_low"].to_numpy(dtype=float)
    hi = frame["ci_high"].to_numpy(dtype=float)
    if np.isnan(lo).all() and np.isnan(hi).all():
        return None
    s = frame["score"].to_numpy(dtype=float)
    return {"type": "data", "symmetric": False, "array": np.nan_to_num(hi - s).tolist(),
            "arrayminus": np.nan_to_num(s - lo).tolist(), "thickness": 1.5, "width": 4}


def _interval_hover(frame: pd.DataFrame, label: str) -> tuple[np.ndarray, str]:
    cols = [c for c in ("ci_low", "ci_high", "n_votes") if c in frame.columns]
    custom = frame[cols].to_numpy(dtype=float) if cols else np.empty((len(frame), 0))
    parts = [f"<b>%{{text}}</b> — {label}", "score %{y:.3f}"]
    if "ci_low" in cols and "ci_high" in cols:
        parts.append(f"95% CI [%{{customdata[{cols.index('ci_low')}]:.3f}}, "
                     f"%{{customdata[{cols.index('ci_high')}]:.3f}}]")
    if "n_votes" in cols:
        parts.append(f"votes %{{customdata[{cols.index('n_votes')}]:,.0f}}")
    return custom, "<br>".join(parts) + "<extra></extra>"


def _check_scores(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in ("condition", "score") if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns condition, score (missing: {', '.join(missing)})")
    out = frame.copy()
    out["condition"] = out["condition"].astype(str)
    return out


def interval_plot(
    scores_frame: pd.DataFrame,
    by_factor: Mapping[str, pd.DataFrame] | None = None,
    published: pd.DataFrame | None = None,
    *,
    title: str = "Scores with 95% confidence intervals",
    score_label: str = "Bradley–Terry score (centred log-strength)",
    published_name: str = "published",
    name: str = "overall",
) -> go.Figure:
    """Figure-4-style interval plot: overall scores on top, per-factor scores below.

    Parameters
    ----------
    scores_frame : DataFrame
        ``condition, score`` and optionally ``ci_low, ci_high, n_votes`` (as
        :meth:`BTResult.to_frame`). Conditions are placed left to right by
        decreasing score.
    by_factor : dict of str to DataFrame, optional
        One frame of the same layout per decision factor (e.g. from
        :func:`bradley_terry.fit_by_reason`); drawn in a second panel, the factors of a
        condition side by side around its position. Conditions missing from a factor's
        fit are skipped.
    published : DataFrame, optional
        ``condition, score`` (optionally ``ci_low, ci_high``) on the same scale — e.g.
        the log of published strengths, centred — drawn as hollow diamonds next to ours.
    title, score_label, published_name, name : str
        Figure title, y-axis label, legend names of ``published`` and of the overall scores.

    Returns
    -------
    Figure
        Trace order: overall, published (if any), then one trace per factor.
    """
    main = _check_scores(scores_frame, "interval_plot")
    main = main.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    order = list(main["condition"])
    pos = {c: k for k, c in enumerate(order)}
    factors = dict(by_factor or {})
    rows = 2 if factors else 1
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=["Overall preference"] + (["Factors influencing preference"] if factors else []),
    )
    shift = -0.12 if published is not None else 0.0  # ours left, published right of each tick
    custom, hover = _interval_hover(main, name)
    fig.add_trace(
        go.Scatter(x=np.arange(len(main)) + shift, y=main["score"], mode="markers", name=name,
                   text=order, customdata=custom, hovertemplate=hover, error_y=_error_bars(main),
                   marker={"size": 9, "color": "#000000", "symbol": "circle"}),
        row=1, col=1,
    )
    if published is not None:
        pub = _check_scores(published, "published")
        pub = pub[pub["condition"].isin(pos)]
        x = pub["condition"].map(pos).to_numpy(dtype=float) + 0.12
        custom, hover = _interval_hover(pub, published_name)
        fig.add_trace(
            go.Scatter(x=x, y=pub["score"], mode="markers", name=published_name, text=list(pub["condition"]),
                       customdata=custom, hovertemplate=hover, error_y=_error_bars(pub),
                       marker={"size": 10, "color": _DROPPED_COLOUR, "symbol": "diamond-open",
                               "line": {"width": 2}}),
            row=1, col=1,
        )
    k = len(factors)
    offsets = (np.arange(k) - (k - 1) / 2) * (FACTOR_WIDTH / max(k, 1)) if k else []
    for (name, frame), off, colour in zip(factors.items(), offsets, _cycle(PALETTE, k), strict=True):
        f = _check_scores(frame, f"factor {name!r}")
        f = f[f["condition"].isin(pos)]
        custom, hover = _interval_hover(f, str(name))
        fig.add_trace(
            go.Scatter(x=f["condition"].map(pos).to_numpy(dtype=float) + off, y=f["score"], mode="markers",
                       name=str(name), text=list(f["condition"]), customdata=custom, hovertemplate=hover,
                       error_y=_error_bars(f), marker={"size": 8, "color": colour}),
            row=2, col=1,
        )
    ticks = {"tickmode": "array", "tickvals": list(range(len(order))), "ticktext": order,
             "range": [-0.6, len(order) - 0.4]}
    for r in range(1, rows + 1):
        fig.update_xaxes(**ticks, row=r, col=1)
        fig.update_yaxes(title_text=score_label if r == 1 else "score per factor", zeroline=True,
                         zerolinecolor="#bbbbbb", row=r, col=1)
    fig.update_xaxes(title_text="condition (best first)", row=rows, col=1)
    fig.update_layout(title={"text": title}, height=420 * rows, template="plotly_white",
                      legend={"title": {"text": "fit"}}, hovermode="closest")
    return fig


def _cycle(palette: Sequence[str], n: int) -> list[str]:
    return [palette[i % len(palette)] for i in range(n)]


def _pair_counts(votes: pd.DataFrame | bradley_terry.PairCounts) -> bradley_terry.PairCounts:
    if isinstance(votes, bradley_terry.PairCounts):
        return votes
    # Win rates describe what raters said, so every main vote counts once (no grading).
    return bradley_terry.count_votes(votes).pairs


def winrate_heatmap(
    votes: pd.DataFrame | bradley_terry.PairCounts,
    order: Sequence[str] | None = None,
    *,
    title: str = "Win rate of the row condition over the column condition",
) -> go.Figure:
    """Heatmap of how often the row condition was preferred to the column condition.

    A "no preference" vote counts as half a win for each side, so cell ``(a, b)`` and
    cell ``(b, a)`` add up to 1. Pairs never compared are blank. The hover gives the
    wins, ties and losses behind each cell.

    Parameters
    ----------
    votes : DataFrame or PairCounts
        A pairwise vote frame (repeats and gold rows are left out) or already
        aggregated counts (e.g. from a pair table).
    order : sequence of str, optional
        Row/column order (e.g. the ranking); default: the conditions sorted by name.
    title : str

    Returns
    -------
    Figure
        One ``Heatmap`` trace; ``z[i][j]`` is the win rate of ``y[i]`` over ``x[j]``.
    """
    pc = _pair_counts(votes)
    wins, ties = pc.matrices()
    names = list(pc.conditions)
    if order is not None:
        order = [str(c) for c in order]
        unknown = sorted(set(order) - set(names))
        if unknown:
            raise ValueError(f"order names conditions without votes: {unknown}")
        idx = [names.index(c) for c in order] + [k for k, c in enumerate(names) if c not in order]
        wins, ties = wins[np.ix_(idx, idx)], ties[np.ix_(idx, idx)]
        names = [names[k] for k in idx]
    total = wins + wins.T + ties
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, (wins + ties / 2) / total, np.nan)
    custom = np.stack([wins, ties, wins.T, total], axis=-1)
    hover = ("<b>%{y}</b> vs <b>%{x}</b><br>win rate %{z:.3f}<br>wins %{customdata[0]:,.0f} · "
             "ties %{customdata[1]:,.0f} · losses %{customdata[2]:,.0f} (of %{customdata[3]:,.0f})<extra></extra>")
    text = np.where(np.isnan(rate), "", np.char.mod("%.2f", np.nan_to_num(rate)))
    fig = go.Figure(
        go.Heatmap(z=rate.tolist(), x=names, y=names, customdata=custom, hovertemplate=hover, zmin=0, zmax=1,
                   zmid=0.5, colorscale="RdBu", text=text.tolist(), texttemplate="%{text}",
                   colorbar={"title": {"text": "win rate"}}, hoverongaps=False)
    )
    fig.update_layout(title={"text": title}, template="plotly_white", height=max(380, 40 * len(names) + 160),
                      xaxis={"title": {"text": "column condition"}, "side": "bottom"},
                      yaxis={"title": {"text": "row condition"}, "autorange": "reversed"})
    return fig


def _axis(raters: pd.DataFrame, wanted: str, fallbacks: Sequence[str]) -> str:
    """The wanted statistic, or the first fallback that has data (a study may have no gold)."""
    for col in (wanted, *fallbacks):
        if col in raters.columns and raters[col].notna().any():
            return col
    return wanted


_QC_LABELS = {
    "consistency": "consistency on repeats (share agreeing)",
    "gold_accuracy": "gold accuracy (share correct)",
    "loo_corr": "correlation with the other raters (leave-one-out)",
    "bt_agreement": "share of decided votes agreeing with the other raters' Bradley–Terry fit",
    "left_share": "share of decided votes for the left clip",
    "median_answer_ms": "median answer time (ms)",
    "median_watch_ms": "median watch time (ms)",
}


def rater_qc(
    raters_frame: pd.DataFrame,
    x: str = "consistency",
    y: str = "gold_accuracy",
    *,
    jitter: float = 0.01,
    title: str | None = None,
) -> go.Figure:
    """Scatter of two screening statistics per rater, dropped raters highlighted.

    Parameters
    ----------
    raters_frame : DataFrame
        :attr:`screening.ScreeningResult.raters` (``rater, kept, dropped_by`` and the
        statistics).
    x, y : str
        Statistics on the axes. When a study has no data for one (e.g. no gold
        trials), the first of ``loo_corr``, ``bt_agreement``, ``left_share``, ``median_answer_ms`` with
        data is used instead and the axis says so.
    jitter : float
        Deterministic jitter (in axis units) so raters with equal shares do not hide
        each other; the hover shows the exact values.
    title : str, optional
        Default: "Rater quality: <x> vs <y>" with the statistics actually drawn.

    Returns
    -------
    Figure
        Two traces, ``kept`` and ``dropped``; the hover of a dropped rater names the
        rule(s) that dropped them.
    """
    missing = [c for c in ("rater", "kept") if c not in raters_frame.columns]
    if missing:
        raise ValueError(f"rater_qc needs columns rater, kept (missing: {', '.join(missing)})")
    df = raters_frame.copy()
    spare = ("loo_corr", "bt_agreement", "left_share", "median_answer_ms", "median_watch_ms")
    x = _axis(df, x, [c for c in spare if c != y])
    y = _axis(df, y, [c for c in spare if c != x])
    for col in (x, y):
        if col not in df.columns:
            df[col] = np.nan
    rng = np.random.default_rng(0)
    dropped_by = df["dropped_by"].fillna("").astype(str) if "dropped_by" in df.columns else pd.Series("", df.index)
    fig = go.Figure()
    for label, mask, colour, symbol in (("kept", df["kept"].astype(bool), _KEPT_COLOUR, "circle"),
                                        ("dropped", ~df["kept"].astype(bool), _DROPPED_COLOUR, "x")):
        part = df[mask.to_numpy()]
        xv = part[x].to_numpy(dtype=float)
        yv = part[y].to_numpy(dtype=float)
        n = len(part)
        custom = np.column_stack([xv, yv, part["n_votes"].to_numpy(dtype=float) if "n_votes" in part
                                  else np.full(n, np.nan)]).astype(object)
        custom = np.column_stack([custom, dropped_by[mask.to_numpy()].replace("", "—").to_numpy(dtype=object)])
        fig.add_trace(go.Scatter(
            x=xv + jitter * rng.uniform(-1, 1, n), y=yv + jitter * rng.uniform(-1, 1, n), mode="markers",
            name=label, text=part["rater"].astype(str).tolist(), customdata=custom.tolist(),
            marker={"color": colour, "symbol": symbol, "size": 9, "opacity": 0.8},
            hovertemplate=(f"<b>%{{text}}</b> ({label})<br>{x} %{{customdata[0]:.3f}}<br>{y} "
                           "%{customdata[1]:.3f}<br>votes %{customdata[2]:,.0f}<br>dropped by %{customdata[3]}"
                           "<extra></extra>"),
        ))
    if title is None:
        title = f"Rater quality: {_QC_LABELS.get(x, x).split(' (')[0]} vs {_QC_LABELS.get(y, y).split(' (')[0]}"
    fig.update_layout(title={"text": title}, template="plotly_white", height=480,
                      xaxis={"title": {"text": _QC_LABELS.get(x, x)}},
                      yaxis={"title": {"text": _QC_LABELS.get(y, y)}}, legend={"title": {"text": "rater"}})
    return fig


def mos_per_content(
    mos_frame: pd.DataFrame,
    *,
    value: str = "mos",
    title: str = "MOS per content with 95% confidence intervals",
    score_label: str = "mean opinion score",
) -> go.Figure:
    """MOS of every (content, condition), one trace per condition.

    Parameters
    ----------
    mos_frame : DataFrame
        ``content, cond, mos`` and optionally ``ci_low, ci_high`` (as
        :func:`analysis.mos.mos` with ``by=("content", "cond")``).
    value : str
        Column to plot (``mos``; a DMOS table uses the same column name).
    title, score_label : str

    Returns
    -------
    Figure
        Contents on the x axis ordered by their mean over conditions (hardest first),
        one trace per condition ordered by its overall mean (best first).
    """
    missing = [c for c in ("content", "cond", value) if c not in mos_frame.columns]
    if missing:
        raise ValueError(f"mos_per_content needs columns content, cond, {value} (missing: {', '.join(missing)})")
    df = mos_frame.copy()
    df["content"] = df["content"].astype(str)
    df["cond"] = df["cond"].astype(str)
    contents = list(df.groupby("content")[value].mean().sort_values(kind="stable").index)
    conds = list(df.groupby("cond")[value].mean().sort_values(ascending=False, kind="stable").index)
    fig = go.Figure()
    for cond, colour in zip(conds, _cycle(PALETTE, len(conds)), strict=True):
        part = df[df["cond"] == cond].set_index("content").reindex([c for c in contents if c in set(df["content"])])
        part = part[part[value].notna()].reset_index()
        err = _error_bars(part.rename(columns={value: "score"}))
        fig.add_trace(go.Scatter(
            x=part["content"].tolist(), y=part[value], mode="markers+lines", name=cond, error_y=err,
            line={"width": 1, "color": colour}, marker={"size": 7, "color": colour},
            hovertemplate=f"<b>{cond}</b> on %{{x}}<br>{value} %{{y:.3f}}<extra></extra>",
        ))
    fig.update_layout(title={"text": title}, template="plotly_white", height=480,
                      xaxis={"title": {"text": "content (hardest first)"}, "categoryorder": "array",
                             "categoryarray": contents},
                      yaxis={"title": {"text": score_label}}, legend={"title": {"text": "condition"}})
    return fig

