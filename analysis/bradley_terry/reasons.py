"""One Bradley–Terry fit per decision factor (the ``reason`` a rater gave)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis import frames
from analysis.bradley_terry.fitting import _check_options, fit
from analysis.bradley_terry.graph import ComparisonGraphError
from analysis.bradley_terry.result import BTResult


def _reason_sets(reason: pd.Series) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Each row's decision factors (``"colours;brightness"`` → two factors), as codes into
    the list of distinct factor sets (split once per distinct ``reason`` text, not per row)."""
    codes, texts = pd.factorize(reason.fillna("").astype(str))
    sets = [frozenset(x.strip() for x in str(t).split(";") if x.strip()) for t in texts]
    return codes, sets


def present_reasons(votes: pd.DataFrame) -> list[str]:
    """The decision factors named in a frame's ``reason`` column, sorted (``;`` joins several).

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (not validated).

    Returns
    -------
    list of str
        Distinct factors; empty without a ``reason`` column.
    """
    if "reason" not in votes.columns:
        return []
    _, sets = _reason_sets(votes["reason"])
    return sorted(set().union(*sets))


#: What :func:`fit_by_reason` does with a factor whose votes cannot be fitted.
ON_ERROR = ("raise", "skip")


def fit_by_reason(
    votes: pd.DataFrame,
    reasons: Iterable[str] | None = None,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    failures: dict[str, str] | None = None,
    **kw: Any,
) -> dict[str, BTResult]:
    """One fit per decision factor, on the votes that name that factor.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here unless a pairwise :class:`analysis.frames.Votes`);
        ``reason`` may hold several factors joined by ``;``.
    reasons : iterable of str, optional
        Factors to fit (default: every factor present, sorted).
    on_error : {"raise", "skip"}
        ``"raise"`` (default): the first factor that cannot be fitted raises.
        ``"skip"``: such a factor (no votes name it, too few to determine every score,
        a disconnected graph, ...) is left out of the result and the others are still
        fitted; the reason is recorded in ``failures``.
    failures : dict, optional
        With ``on_error="skip"``, filled with factor → error message for every factor
        left out (pass an empty dict and read it afterwards).
    **kw
        Passed to :func:`fit`.

    Returns
    -------
    dict
        Factor → :class:`BTResult`, in the order of ``reasons``.

    Raises
    ------
    frames.FrameError
        On a malformed frame.
    ComparisonGraphError
        (``on_error="raise"``) naming the factor whose votes do not determine the scores.
    ValueError
        (``on_error="raise"``) a factor no vote names; bad ``on_error`` or fit options.
    """
    df = frames.validate(votes, "pairwise")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    _check_options(kw.get("ties", "davidson"), kw.get("ci", "cluster"), kw.get("alpha", 0.05),
                   kw.get("n_boot", 1000), per_vote=True)
    codes, sets = _reason_sets(df["reason"])
    present = sorted(set().union(*sets))
    wanted = present if reasons is None else [frames.normalize_id(str(r)) for r in reasons]
    out: dict[str, BTResult] = {}
    for reason in wanted:
        rows = np.isin(codes, [k for k, s in enumerate(sets) if reason in s])
        try:
            if not rows.any():
                raise ValueError(f"no votes give the reason {reason!r} (present: {', '.join(present) or 'none'})")
            try:
                out[reason] = fit(df.rows(rows), **kw)
            except ComparisonGraphError as exc:
                raise type(exc)(f"reason {reason!r}: {exc}", exc.components) from exc
        except (ComparisonGraphError, ValueError) as exc:
            if on_error == "raise" or isinstance(exc, frames.FrameError):
                raise
            if failures is not None:
                failures[reason] = str(exc)
    return out
