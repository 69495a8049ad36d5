"""What both generators share: the result type, the schedule of a study and the tidy-frame assembly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import frames

#: Condition names of the gold trials (never mixed with real conditions).
GOLD_REFERENCE = "GOLD_REFERENCE"
GOLD_DEGRADED = "GOLD_DEGRADED"
GOLD_CONDITION = "GOLD"
#: Name of the hidden reference condition of an ``acr-hr`` simulation.
REFERENCE_CONDITION = "REF"

_EPOCH = np.datetime64("2025-03-01T09:00:00", "ms")


@dataclass(frozen=True, eq=False)
class Simulation:
    """A synthetic study and the truth behind it.

    Attributes
    ----------
    votes : Votes
        A validated, read-only tidy frame (pairwise or ratings layout, see
        :mod:`analysis.frames`), plus an extra ``answer_ms`` column; ``votes.copy()`` is a
        plain DataFrame to change.
    truth : DataFrame
        One row per condition: ``condition`` and ``score`` (true score, centred to mean 0
        over the conditions). Ratings add ``quality`` (the mean true quality on the
        scale). Pairwise ``score`` is on the log-strength scale of the generating model.
    raters : DataFrame
        One row per rater: ``rater``, ``spammer`` and, for ratings, ``bias`` and
        ``inconsistency`` (the per-rater sd); for pairwise ``noise`` (the sd of the
        rater's own view of the scores).
    stimuli : DataFrame or None
        Ratings only: ``content, cond, quality`` (true quality of every stimulus).
    params : dict
        Every parameter used, defaults resolved.
    """

    votes: pd.DataFrame
    truth: pd.DataFrame
    raters: pd.DataFrame
    stimuli: pd.DataFrame | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """How a study's trials are packed, and the special trials on top of the regular ones.

    The base of :class:`~analysis.simulate.PairwiseDesign` and
    :class:`~analysis.simulate.RatingsDesign`; its fields are keyword-only there.

    Attributes
    ----------
    session_size : int
        Regular trials per session.
    repeats_per_rater : int
        Consistency repeats per rater: an earlier trial of the same session shown again
        at the session's end (pairwise: sides swapped).
    gold_per_rater : int
        Gold trials per rater, each in a random session of that rater.
    clip_ms : int
        Clip duration (pairwise clips play in sync).
    study : str
        Value of the ``study`` column.
    """

    session_size: int = 30
    repeats_per_rater: int = 0
    gold_per_rater: int = 0
    clip_ms: int = 10_000
    study: str = "sim"

    def params(self) -> dict[str, Any]:
        """The fields as a flat dict, for :attr:`Simulation.params`.

        Returns
        -------
        dict
        """
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Rows:
    """Every row of a simulated study: the regular trials, then repeats, then gold trials.

    Attributes
    ----------
    rater, session : ndarray
        Rater index and per-rater session number of every row.
    order_key : ndarray
        Sort key of a row inside its session (repeats come last, gold anywhere).
    original : ndarray
        For a repeat row the row index of its first showing, else -1.
    repeated : ndarray
        Indices (into the regular rows) of the trials that are repeated.
    n_regular, n_gold : int
    """

    rater: np.ndarray
    session: np.ndarray
    order_key: np.ndarray
    original: np.ndarray
    repeated: np.ndarray
    n_regular: int
    n_gold: int

    @property
    def n_main(self) -> int:
        """Regular trials and repeats (the rows answered from the response model)."""
        return self.n_regular + len(self.repeated)


def names(prefix: str, n: int, width: int) -> np.ndarray:
    """``prefix`` + 1…n, zero-padded to ``width`` digits (wider when ``n`` needs it)."""
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def condition_names(n: int) -> list[str]:
    """``C01, C02, …`` (wider when ``n`` needs it).

    Parameters
    ----------
    n : int
        Number of conditions.

    Returns
    -------
    list of str
        ``n`` names, zero-padded to at least two digits.
    """
    return list(names("C", n, 2))


def check(cond: bool, msg: str) -> None:
    """Raise ``ValueError(msg)`` unless ``cond``."""
    if not cond:
        raise ValueError(msg)


def centred_truth(rng: np.random.Generator, given: Sequence[float] | None, n: int, sd: float) -> np.ndarray:
    """The ``n`` true values (``given``, or drawn from ``N(0, sd²)``), centred to mean 0."""
    if given is None:
        values = rng.normal(0.0, sd, n)
    else:
        values = np.asarray(given, dtype=float)
        check(values.shape == (n,), f"true_scores needs {n} values")
    return values - values.mean()


def lognormal(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    """Per-rater factors ``exp(N(0, sd²))``; ones without a draw when ``sd`` is 0 (seeded streams unchanged)."""
    return np.exp(rng.normal(0.0, sd, n)) if sd > 0 else np.ones(n)


def draw_spammers(rng: np.random.Generator, n_raters: int, fraction: float) -> np.ndarray:
    """Boolean mask of ``round(fraction · n_raters)`` spammers chosen at random."""
    spammer = np.zeros(n_raters, dtype=bool)
    spammer[rng.choice(n_raters, round(fraction * n_raters), replace=False)] = True
    return spammer


def _sessions(rater_of: np.ndarray, n_raters: int, session_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Session number (per rater) and in-session position of regular trials.

    Trials arrive shuffled and are sorted by rater, so each rater's trials are chunked
    into consecutive sessions of ``session_size``.
    """
    order = np.argsort(rater_of, kind="stable")
    counts = np.bincount(rater_of, minlength=n_raters)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(len(rater_of), dtype=np.int64)
    pos[order] = np.arange(len(rater_of)) - np.repeat(starts, counts)
    return pos // session_size, pos % session_size


def _pick_per_rater(rng: np.random.Generator, rater_of: np.ndarray, n_raters: int, k: int) -> np.ndarray:
    """Indices of up to ``k`` random rows per rater (without replacement), vectorised."""
    if k <= 0 or len(rater_of) == 0:
        return np.empty(0, dtype=np.int64)
    # One argsort on rater + a random fraction = random order within each rater.
    order = np.argsort(rater_of + rng.random(len(rater_of)))
    counts = np.bincount(rater_of, minlength=n_raters)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    return order[rank < k]


def layout_rows(rng: np.random.Generator, rater_of: np.ndarray, n_raters: int, schedule: Schedule) -> Rows:
    """Sessions of the regular trials, plus the repeats and gold trials of ``schedule``.

    Parameters
    ----------
    rng : Generator
    rater_of : ndarray
        Rater index of every regular trial.
    n_raters : int
    schedule : Schedule

    Returns
    -------
    Rows
    """
    size = schedule.session_size
    session_of, pos = _sessions(rater_of, n_raters, size)
    # Repeats: an earlier trial of the same session, at the session's end.
    orig = _pick_per_rater(rng, rater_of, n_raters, schedule.repeats_per_rater)
    # Gold: per rater, placed in a random session of that rater at a random position.
    n_sess = np.bincount(rater_of, minlength=n_raters) // size + 1
    g_rater = np.repeat(np.arange(n_raters), schedule.gold_per_rater)
    g_session = (rng.random(len(g_rater)) * np.maximum(n_sess[g_rater] - 1, 1)).astype(np.int64)
    n_reg, n_rep, n_gold = len(rater_of), len(orig), len(g_rater)
    order_key = np.concatenate([pos.astype(float), size + rng.random(n_rep), rng.random(n_gold) * size])
    return Rows(
        rater=np.concatenate([rater_of, rater_of[orig], g_rater]),
        session=np.concatenate([session_of, session_of[orig], g_session]),
        order_key=order_key,
        original=np.concatenate([np.full(n_reg, -1), orig, np.full(n_gold, -1)]),
        repeated=orig, n_regular=n_reg, n_gold=n_gold,
    )


def gold_contents(rng: np.random.Generator, contents: np.ndarray, gold_per_rater: int, n_gold: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The content vocabulary extended by ``gold01…``, and a random gold content code per gold row."""
    n_gold_contents = max(gold_per_rater, 1)
    vocab = np.concatenate([contents, names("gold", n_gold_contents, 2)])
    return vocab, len(contents) + rng.integers(0, n_gold_contents, n_gold)


def _timing(rng: np.random.Generator, spam: np.ndarray, clip_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``watch_ms`` (honest raters sometimes replay), ``answer_ms`` (spammers answer fast) and ``stalls``."""
    n = len(spam)
    replays = rng.poisson(0.3, n) * ~spam
    watch_ms = (clip_ms * (1 + replays) + rng.integers(0, 400, n)).astype(np.int64)
    answer_ms = np.where(spam, rng.lognormal(np.log(250), 0.3, n), rng.lognormal(np.log(2500), 0.5, n))
    answer_ms = np.round(answer_ms).astype(np.int64)
    stalls = rng.poisson(0.02, n).astype(np.int64)
    return watch_ms, answer_ms, stalls


def assemble(rng: np.random.Generator, rows: Rows, rater_names: np.ndarray, spammer: np.ndarray,
             clip_ms: int) -> dict[str, Any]:
    """Trial numbers, sessions, repeat links and timing for all rows at once.

    Parameters
    ----------
    rng : Generator
    rows : Rows
    rater_names : ndarray
    spammer : ndarray of bool
        Per rater.
    clip_ms : int

    Returns
    -------
    dict
        ``rater, session, trial, repeat_of, watch_ms, answer_ms, stalls, answered_at``
        in the rows' order.
    """
    rater_of, session_of = rows.rater, rows.session
    n = len(rater_of)
    order = np.lexsort((rows.order_key, session_of, rater_of))
    r_s, s_s = rater_of[order], session_of[order]
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = (r_s[1:] != r_s[:-1]) | (s_s[1:] != s_s[:-1])
    sess_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    trial = np.empty(n, dtype=np.int64)
    trial[order] = np.arange(n) - sess_start + 1
    repeat_of = np.full(n, -1, dtype=np.int64)
    rep = rows.original >= 0
    repeat_of[rep] = trial[rows.original[rep]]

    watch_ms, answer_ms, stalls = _timing(rng, spammer[rater_of], clip_ms)
    # Sessions start at random times within four weeks; each trial adds its duration.
    sess_id = np.cumsum(new_session) - 1
    start = rng.integers(0, 28 * 24 * 3600 * 1000, int(new_session.sum()))
    step = (watch_ms + answer_ms + 1500)[order]
    csum = np.cumsum(step)
    elapsed_sorted = csum - csum[sess_start] + step[sess_start]
    answered_at = np.empty(n, dtype="datetime64[ms]")
    answered_at[order] = _EPOCH + (start[sess_id] + elapsed_sorted).astype("timedelta64[ms]")
    return {
        "rater": strings(rater_names, rater_of),
        "session": _session_names(rater_names, rater_of, session_of),
        "trial": trial,
        "repeat_of": repeat_of,
        "watch_ms": watch_ms,
        "answer_ms": answer_ms,
        "stalls": stalls,
        "answered_at": answered_at,
    }


def _session_names(rater_names: np.ndarray, rater_of: np.ndarray, session_of: np.ndarray) -> Any:
    """``<rater>-s01``…: each (rater, session) named once, then indexed (far cheaper than per row)."""
    per_rater = int(session_of.max(initial=0)) + 1
    code = rater_of * per_rater + session_of
    uniq, inverse = np.unique(code, return_inverse=True)
    width = max(2, len(str(per_rater)))
    per_session = np.array(
        [f"{rater_names[c // per_rater]}-s{c % per_rater + 1:0{width}d}" for c in uniq], dtype=object
    )
    return strings(per_session, inverse)


def strings(vocab: Sequence[str | None] | np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A string column from a small vocabulary and per-row codes (``None`` names are null).

    Taking from an Arrow array is ~50× faster than building 10⁵ Python strings.
    """
    arrow = pa.array(list(vocab), type=pa.large_string())
    return pd.array(arrow.take(pa.array(np.asarray(codes, dtype=np.int64))), dtype="string")


def nullable(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """A nullable integer column: ``values`` where not ``missing``."""
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def tidy_frame(cols: dict[str, Any], kind: frames.Kind, meta: dict[str, Any], study: str, method: str
               ) -> pd.DataFrame:
    """Build the tidy frame with canonical dtypes, then run the schema validator.

    ``cols`` holds the layout's own columns; the per-trial bookkeeping every layout shares
    (rater, session, trial, repeats, timing) comes from ``meta`` (see :func:`assemble`).
    """
    n_all = len(meta["rater"])
    cols = {
        "study": strings([study], np.zeros(n_all, dtype=np.int64)),
        "method": strings([method], np.zeros(n_all, dtype=np.int64)),
        **{k: meta[k] for k in ("rater", "session", "trial", "repeat_of", "answered_at", "watch_ms", "stalls",
                                "answer_ms")},
        **cols,
    }
    cols["repeat_of"] = nullable(cols["repeat_of"], cols["repeat_of"] < 0)
    cols["answered_at"] = pd.to_datetime(cols["answered_at"]).tz_localize("UTC")
    ordered = [*frames.columns_for(kind), "answer_ms"]
    return frames.validate(pd.DataFrame(cols)[ordered], kind)
