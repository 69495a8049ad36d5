"""Published ratings as panelrank ratings frames.

Studies publish their individual ratings as a long table, one row per rating: who rated,
which clip (content and condition), the score — SUREAL's dataset files, converted to CSV,
look like that (``content, condition, stimulus, subject, score``). :func:`ratings_frame`
turns such a table into a validated ratings frame (:mod:`analysis.frames`), so MOS,
normalisation, the subject model and screening run on it as on a study's own export;
:func:`read_ratings_csv` reads the CSV first, its ids as text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import frames


def ratings_frame(
    table: pd.DataFrame,
    *,
    method: str,
    rater: str = "subject",
    content: str = "content",
    cond: str = "condition",
    score: str = "score",
    study: str = "imported",
) -> pd.DataFrame:
    """A long table of ratings as a validated ratings frame.

    Parameters
    ----------
    table : DataFrame
        One row per rating.
    method : str
        The test method (a ratings method of :data:`analysis.methods.METHODS`, e.g. ``"acr5"``).
    rater, content, cond, score : str
        The table's columns holding the rater id, the content (source clip), the
        condition and the score.
    study : str
        Study id written in every row.

    Returns
    -------
    DataFrame
        As :func:`analysis.frames.validate` returns it: each rater's ratings are one session
        named after the rater, trials numbered in table order; no repeats, gold, times or
        playback data. The table's other columns follow as extra columns.

    Raises
    ------
    KeyError
        When a named column is missing.
    analysis.frames.FrameError
        When the result does not follow the schema (empty ids, scores off the scale, ...).
    """
    mapping = {rater: "rater", content: "content", cond: "cond", score: "score"}
    missing = [c for c in mapping if c not in table.columns]
    if missing:
        raise KeyError(f"ratings table lacks column(s) {missing} (has {list(table.columns)})")
    ids = table[rater]
    out = pd.DataFrame({
        "study": study, "rater": ids, "session": ids,
        "trial": ids.groupby(ids, sort=False, dropna=False).cumcount().to_numpy() + 1,
        "content": table[content], "cond": table[cond], "score": table[score], "method": method,
        **dict.fromkeys(("repeat_of", "gold_expected", "answered_at", "watch_ms", "stalls"), np.nan),
    }, index=table.index)
    extra = [c for c in table.columns if c not in mapping and c not in out.columns]
    return frames.validate(pd.concat([out, table[extra]], axis=1), "ratings")


def read_ratings_csv(path: str | Path, *, method: str, study: str | None = None, **columns: str) -> pd.DataFrame:
    """Read a CSV of individual ratings (one row per rating) as a validated ratings frame.

    Parameters
    ----------
    path : str or Path
    method : str
        The test method of the ratings, e.g. ``"acr5"``.
    study : str, optional
        Study id; default: the name of the CSV's folder.
    **columns : str
        ``rater``, ``content``, ``cond``, ``score`` column names, as in :func:`ratings_frame`.

    Returns
    -------
    DataFrame
        As :func:`ratings_frame` returns it. Every column but the score is read as text,
        verbatim: a subject named ``NA`` is that subject, only an empty cell is missing.

    Examples
    --------
    >>> votes = read_ratings_csv("vqeg-hd3/ratings.csv", method="acr5")  # doctest: +SKIP
    >>> mos.mos(votes, by=("content", "cond"))  # doctest: +SKIP
    """
    path = Path(path)
    score = columns.get("score", "score")
    table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if score in table.columns:
        table[score] = pd.to_numeric(table[score], errors="coerce")
    return ratings_frame(table, method=method, study=study or path.resolve().parent.name, **columns)
