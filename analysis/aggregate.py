"""Aggregated pairwise input: pair tables as published studies release them.

:func:`from_pair_table` turns a table with one row per condition pair (``cond_a``,
``cond_b``; positive preference = ``cond_a``) into the sufficient statistics of
:mod:`analysis.bradley_terry` (:class:`~analysis.bradley_terry.PairCounts`). Three
layouts are recognised, in this order:

1. **counts per scale value** — columns ``n_-2 … n_2`` (keyed by ``pref``, positive =
   A), or ``v1 … vK`` (P.910 category numbering, ``v1`` = strongest preference for A,
   the middle category = no preference: ``pref = (K+1)/2 − k``);
2. **win/tie/loss counts** — ``wins_a, ties, wins_b``;
3. **number of votes and mean vote** — ``n`` with ``mean_pref`` (on the ``pref`` scale,
   positive = A) or ``dmos`` (P.910 numbering, 1 = strongest for A, as NTIRE publishes).

The mean-vote mapping (an explicit assumption)
-----------------------------------------------
A mean does not determine win/tie/loss counts, so :func:`from_pair_table` assumes:

* a share ``tie_share`` of the ``n`` votes were "no preference";
* every other vote has the same expected strength ``strength`` (mean ``|pref|`` of the
  non-tie votes, between 1 and the scale's top);
* the wins then split so the mean is reproduced:
  ``mean = (1 − tie_share) · strength · (p_A − p_B)``, ``p_A + p_B = 1``, i.e.
  ``p_A = ½ (1 + mean / ((1 − tie_share) · strength))``, clipped to [0, 1]
  (clipped rows are counted in ``assumption["clipped"]``).

So ``wins_a = n (1 − tie_share) p_A``, ``ties = n · tie_share``,
``wins_b = n (1 − tie_share)(1 − p_A)`` — multiplied by ``strength`` with
``graded=True`` (a strong vote counts as more than one win). A larger ``strength`` or
``tie_share`` moves ``p_A`` towards ½ and shrinks the spread of the fitted scores; in an
incomplete design (and where ``p_A`` is clipped) it can also swap close conditions — on
the NTIRE combined table ``tie_share=0, strength=1`` swaps the top two. The defaults
(``tie_share=0.2``, ``strength=1.5``: a fifth "no preference", weak and strong equally
common) are a neutral middle, not an estimate.

:func:`read_ntire` parses the NTIRE 2025 VQE result files (``X_Y : nos=…, DMOS=…``
lines and the published BT table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import frames, methods
from analysis.bradley_terry import PairCounts

_N_COL = re.compile(r"^n_(-?\d+)$")
_V_COL = re.compile(r"^v(\d+)$")


def _pair_values(df: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-scale-value count columns → {column: (pref value, counts)}."""
    n_cols = {c: int(_N_COL.match(c).group(1)) for c in df.columns if _N_COL.match(str(c))}
    if n_cols:
        return {c: (v, df[c].to_numpy(dtype=float)) for c, v in n_cols.items()}
    v_cols = {c: int(_V_COL.match(c).group(1)) for c in df.columns if _V_COL.match(str(c))}
    if v_cols:
        k = max(v_cols.values())
        if sorted(v_cols.values()) != list(range(1, k + 1)) or k % 2 == 0:
            raise ValueError(f"v-columns must be v1…vK with K odd, got {sorted(v_cols)}")
        return {c: ((k + 1) // 2 - v, df[c].to_numpy(dtype=float)) for c, v in v_cols.items()}
    return {}


@dataclass(frozen=True)
class MeanMapping:
    """The assumption turning ``n`` and a mean vote into win/tie/loss counts (see module doc)."""

    tie_share: float = 0.2
    strength: float = 1.5
    graded: bool = False

    def counts(self, n: np.ndarray, mean_pref: np.ndarray, top: int) -> tuple[np.ndarray, ...]:
        """``wins_a, ties, wins_b`` and a mask of rows whose ``p_A`` had to be clipped.

        Parameters
        ----------
        n : ndarray
            Votes per pair row.
        mean_pref : ndarray
            Mean vote per row on the signed scale (positive = ``cond_a`` preferred).
        top : int
            Strongest vote of the scale (bound of ``strength``).

        Returns
        -------
        wins_a, ties, wins_b : ndarray
            Counts per row (``wins_*`` multiplied by ``strength`` when ``graded``).
        clipped : ndarray of bool
            Rows whose implied ``p_A`` fell outside ``[0, 1]``.

        Raises
        ------
        ValueError
            When ``tie_share`` is not in ``[0, 1)`` or ``strength`` not in ``[1, top]``.
        """
        if not 0 <= self.tie_share < 1:
            raise ValueError("tie_share must be in [0, 1)")
        if not 1 <= self.strength <= top:
            raise ValueError(f"strength must be between 1 and the scale's top ({top})")
        decided = n * (1 - self.tie_share)
        raw = 0.5 * (1 + mean_pref / ((1 - self.tie_share) * self.strength))
        p_a = np.clip(raw, 0.0, 1.0)
        weight = self.strength if self.graded else 1.0
        return decided * p_a * weight, n * self.tie_share, decided * (1 - p_a) * weight, raw != p_a


@dataclass(frozen=True, eq=False)
class PairTable:
    """Counts recovered from a pair table, ready for :func:`bradley_terry.fit_counts`.

    Attributes
    ----------
    conditions : list of str
    wins : ndarray
        ``wins[a, b]`` = (weighted) times a was preferred to b.
    ties : ndarray
        Symmetric tie counts.
    n_votes : ndarray
        Votes involving each condition.
    layout : str
        ``"per-value"``, ``"win-tie-loss"`` or ``"mean"``.
    assumption : dict
        The mapping used (for ``"mean"``), including how many rows were clipped.
    """

    conditions: list[str]
    wins: np.ndarray
    ties: np.ndarray
    n_votes: np.ndarray
    layout: str
    assumption: dict[str, Any] = field(default_factory=dict)

    def pair_counts(self) -> PairCounts:
        """The counts as :class:`~analysis.bradley_terry.PairCounts` (one entry per compared pair).

        Returns
        -------
        PairCounts
        """
        return PairCounts.from_matrices(self.conditions, self.wins, self.ties, self.n_votes)


def from_pair_table(
    df: pd.DataFrame,
    *,
    method: str = "pc5",
    graded: bool = False,
    tie_share: float = 0.2,
    strength: float = 1.5,
) -> PairTable:
    """Read a pair table (see the module docstring for the layouts and the mean mapping).

    Parameters
    ----------
    df : DataFrame
        One row per pair (a pair may repeat; its counts add up). ``cond_a``/``cond_b``
        are text ids (put in Unicode NFC, as :func:`analysis.frames.validate` does); an
        empty one is an error.
    method : str
        The pairwise test method of the votes (its scale bounds ``dmos`` and the strength).
    graded : bool
        A vote of strength k counts as k wins (per-value and mean layouts).
    tie_share, strength : float
        The mean-vote mapping's assumption.

    Returns
    -------
    PairTable
    """
    entry = methods.METHODS.get(method)
    if entry is None or not entry.pairwise:
        raise ValueError(f"method must be pairwise ({', '.join(methods.PAIRWISE_METHODS)}), got {method!r}")
    problems = [f"missing column '{c}'" for c in ("cond_a", "cond_b") if c not in df.columns]
    if problems:
        raise ValueError("pair table: " + "; ".join(problems))
    for col in ("cond_a", "cond_b"):
        empty = frames.is_blank(df[col])
        if empty.any():
            raise ValueError(f"pair table: column '{col}' is empty in {int(empty.sum())} row(s)")
    # Ids are text in NFC, as in vote frames: 'NA' is a name, 'café' typed two ways is one condition.
    a = frames.normalize_ids(df["cond_a"].astype(str)).to_numpy()
    b = frames.normalize_ids(df["cond_b"].astype(str)).to_numpy()
    if (a == b).any():
        raise ValueError("pair table: a row compares a condition with itself")
    top = entry.high
    assumption: dict[str, Any] = {}
    per_value = _pair_values(df)
    if per_value:
        layout = "per-value"
        wa = np.zeros(len(df))
        wb = np.zeros(len(df))
        tt = np.zeros(len(df))
        for value, counts in per_value.values():
            if abs(value) > top:
                raise ValueError(f"count column for pref={value} is off the {method} scale")
            weight = abs(value) if graded else 1.0
            if value > 0:
                wa += weight * counts
            elif value < 0:
                wb += weight * counts
            else:
                tt += counts
        n = sum(c for _, c in per_value.values())
    elif {"wins_a", "ties", "wins_b"} <= set(df.columns):
        layout = "win-tie-loss"
        wa, tt, wb = (df[c].to_numpy(dtype=float) for c in ("wins_a", "ties", "wins_b"))
        n = wa + tt + wb
    elif "n" in df.columns and ({"mean_pref", "dmos"} & set(df.columns)):
        layout = "mean"
        n = df["n"].to_numpy(dtype=float)
        if "mean_pref" in df.columns:
            mean = df["mean_pref"].to_numpy(dtype=float)
        else:
            mean = (top + 1) - df["dmos"].to_numpy(dtype=float)  # P.910 numbering: 1 = strongest A
        if (np.abs(mean) > top).any():
            raise ValueError(f"mean vote outside the {method} scale")
        mapping = MeanMapping(tie_share, strength, graded)
        wa, tt, wb, clipped = mapping.counts(n, mean, top)
        assumption = {"tie_share": tie_share, "strength": strength, "graded": graded,
                      "clipped": int(clipped.sum()), "rule": "p_A = (1 + mean/((1-tie_share)*strength))/2"}
    else:
        raise ValueError(
            "pair table: need counts per scale value (n_-2…n_2 or v1…v5), or wins_a/ties/wins_b, "
            f"or n with mean_pref or dmos; got columns {list(df.columns)}"
        )
    values = np.column_stack([wa, tt, wb, n])
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("pair table: counts must be finite and non-negative")
    conds = sorted(set(a) | set(b))
    index = {c: k for k, c in enumerate(conds)}
    ia = np.array([index[x] for x in a], dtype=np.int64)
    ib = np.array([index[x] for x in b], dtype=np.int64)
    k = len(conds)
    wins = np.zeros((k, k))
    ties = np.zeros((k, k))
    np.add.at(wins, (ia, ib), wa)
    np.add.at(wins, (ib, ia), wb)
    np.add.at(ties, (ia, ib), tt)
    np.add.at(ties, (ib, ia), tt)
    n_votes = np.bincount(ia, n, k) + np.bincount(ib, n, k)
    return PairTable(conds, wins, ties, n_votes, layout, assumption)


# ----------------------------------------------------------------------------------------
# NTIRE 2025 VQE result files
# ----------------------------------------------------------------------------------------

_PAIR_LINE = re.compile(r"^\s*([A-Za-z0-9]+)_([A-Za-z0-9]+)\s*:\s*(nos=.*)$")
_BT_LINE = re.compile(r"^\s*([A-Za-z0-9]+)\s*:\s*(vote=.*)$")
_NTIRE_KEYS = {"nos": "n", "DMOS": "dmos", "median": "median", "ci_95%": "ci95",
               "p(colors)": "p_colors", "p(brightness)": "p_brightness", "p(skintone)": "p_skintone"}


def _fields(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        out[key.strip()] = float(value.strip().lstrip("±+"))
    return out


@dataclass(frozen=True, eq=False)
class NtireResults:
    """One NTIRE result file.

    Attributes
    ----------
    pairs : DataFrame
        ``cond_a, cond_b, n, dmos, median, ci95, p_colors, p_brightness, p_skintone,
        mean_pref`` (``mean_pref = 3 − dmos``: positive = ``cond_a`` preferred).
    published : DataFrame
        ``condition, name, vote, color, brightness, skintone, log_vote`` — the published
        BT strengths (geometric mean 1) and ``log_vote`` their centred logs, best first.
    header : list of str
        The screening summary lines at the top.
    """

    pairs: pd.DataFrame
    published: pd.DataFrame
    header: list[str]
    path: str = ""

    def pair_table(self, **kw: Any) -> PairTable:
        """Counts via :func:`from_pair_table` (``n`` and ``mean_pref``; mapping options in ``kw``).

        Parameters
        ----------
        **kw
            Passed to :func:`from_pair_table` (``graded``, ``tie_share``, ``strength``); the
            method is always ``"pc5"``.

        Returns
        -------
        PairTable
        """
        return from_pair_table(self.pairs[["cond_a", "cond_b", "n", "mean_pref"]], method="pc5", **kw)


def read_ntire(path: str | Path) -> NtireResults:
    """Parse an NTIRE 2025 VQE ``results/*.txt`` file.

    Conditions are the two-letter codes of the pair lines; the BT table's full names
    (``TMobilerestore``) map to codes by their first two letters (``TM``).

    Parameters
    ----------
    path : str or Path
        The results file (UTF-8 text).

    Returns
    -------
    NtireResults
        The pair lines (with ``mean_pref = 3 − dmos``), the published BT table and the
        header lines.

    Raises
    ------
    ValueError
        When no pair line is found, a line cannot be parsed, or a code in the pairs has
        no published score.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header, pairs, published = [], [], []
    section = "header"
    for no, line in enumerate(lines, 1):
        if "per-experiment stats" in line:
            section = "pairs"
            continue
        if "bradley terry" in line:
            section = "bt"
            continue
        if not line.strip():
            continue
        try:
            if section == "header":
                header.append(line.strip())
            elif section == "pairs" and (m := _PAIR_LINE.match(line)):
                f = _fields(m.group(3))
                pairs.append({"cond_a": m.group(1), "cond_b": m.group(2),
                              **{_NTIRE_KEYS.get(k, k): v for k, v in f.items()}})
            elif section == "bt" and (m := _BT_LINE.match(line)):
                name = m.group(1)
                published.append({"condition": name[:2].upper(), "name": name, **_fields(m.group(2))})
            else:
                raise ValueError("unrecognised line")
        except ValueError as exc:
            raise ValueError(f"{path}:{no}: cannot parse {line.strip()!r}: {exc}") from exc
    if not pairs:
        raise ValueError(f"{path}: no 'X_Y : nos=…' pair lines found")
    pairs_df = pd.DataFrame(pairs)
    pairs_df["n"] = pairs_df["n"].astype(np.int64)
    pairs_df["mean_pref"] = 3.0 - pairs_df["dmos"]
    pub = pd.DataFrame(published)
    if len(pub):
        pub["log_vote"] = np.log(pub["vote"]) - np.log(pub["vote"]).mean()
        missing = sorted((set(pairs_df["cond_a"]) | set(pairs_df["cond_b"])) - set(pub["condition"]))
        if missing:
            raise ValueError(f"{path}: conditions {missing} have no published BT score")
    return NtireResults(pairs=pairs_df, published=pub, header=header, path=str(path))
