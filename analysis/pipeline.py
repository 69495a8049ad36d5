"""Votes in, report directory out: the analysis behind ``panelrank analyze`` and ``analyze-study``.

:func:`run_analysis` builds the tie-breaker (a scorer over the stimulus files, or a
table of S_obj values), analyses the votes with :func:`analysis.report.analyze` and
writes the report files. How to fit is an :class:`analysis.report.AnalysisOptions`;
what breaks ties is a :class:`TiebreakSource`. Every problem with the input, the scorer
or the output directory raises one of :data:`ERRORS`, and then nothing is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import bradley_terry, frames, report
from analysis.objective.cache import open_cache, text_progress
from analysis.objective.config import SCORER_ERRORS, parse_options
from analysis.objective.inputs import read_s_obj_csv
from analysis.objective.tiebreak import build_tiebreaker
from analysis.ranking import TieBreaker

#: What :func:`run_analysis` raises for a problem with its input, scorer or output (``OSError`` included).
ERRORS: tuple[type[Exception], ...] = (frames.FrameError, bradley_terry.ComparisonGraphError, *SCORER_ERRORS)


@dataclass(frozen=True)
class TiebreakSource:
    """What orders the conditions the votes cannot separate.

    Give a ``scorer`` (over ``stimuli``) or an ``s_obj_path``; with neither, ties stay
    unresolved.

    Attributes
    ----------
    scorer : str or mapping, optional
        A registered scorer name, a model file written by ``panelrank fit-scorer``, or a
        scorer configuration (``{name, options}``).
    stimuli : DataFrame, optional
        ``content, condition, path`` of the stimulus files the scorer reads.
    s_obj_path : Path, optional
        CSV ``condition, s_obj``: order ties by these values instead of a scorer.
    scorer_options : sequence of str or mapping
        Options of ``scorer`` (``KEY=VALUE`` strings or a mapping); only with ``scorer``.
    cache_dir : Path, optional
        Score cache directory (default: no cache).
    workers : int
        Processes scoring stimuli in parallel.
    """

    scorer: str | Mapping[str, Any] | None = None
    stimuli: pd.DataFrame | None = None
    s_obj_path: Path | None = None
    scorer_options: Sequence[str] | Mapping[str, Any] = ()
    cache_dir: Path | None = None
    workers: int = 1


def build_source_tiebreaker(source: TiebreakSource, stack: contextlib.ExitStack) -> TieBreaker | None:
    """The tie-breaker ``source`` describes, or None when it names neither a scorer nor S_obj values.

    Parameters
    ----------
    source : TiebreakSource
        The scorer or S_obj table.
    stack : ExitStack
        Holds the score cache open for as long as the tie-breaker is used.

    Returns
    -------
    TieBreaker or None
        Orders conditions inside a tie group.

    Raises
    ------
    ValueError
        Scorer options without a scorer, or a bad option or S_obj file (and the other
        ``SCORER_ERRORS`` of a scorer that cannot be built).
    """
    options = parse_options(source.scorer_options)
    if options and source.scorer is None:
        raise ValueError("--scorer-option needs --tiebreak")
    if source.scorer is None and source.s_obj_path is None:
        return None
    s_obj = read_s_obj_csv(source.s_obj_path) if source.s_obj_path is not None else None
    cache = stack.enter_context(open_cache(source.cache_dir)) if s_obj is None else None
    return build_tiebreaker(source.scorer, stimuli=source.stimuli, s_obj=s_obj, options=options, cache=cache,
                            workers=source.workers, progress=text_progress(label="scoring stimuli"))


def run_analysis(
    votes: pd.DataFrame,
    out_dir: str | Path,
    options: report.AnalysisOptions | None = None,
    tiebreak: TiebreakSource | None = None,
) -> report.AnalysisResult:
    """Analyse ``votes`` and write the report directory.

    Parameters
    ----------
    votes : DataFrame
        Votes, ratings or a pair table (validated by :func:`analysis.report.analyze`).
    out_dir : str or Path
        Report directory (see :func:`analysis.report.write_report`).
    options : AnalysisOptions, optional
        How to screen, fit and rank (default: ``AnalysisOptions()``); its ``tiebreak``
        is replaced by the one ``tiebreak`` builds, if any.
    tiebreak : TiebreakSource, optional
        What orders tie groups (default: nothing).

    Returns
    -------
    AnalysisResult
        What was written.

    Raises
    ------
    Exception
        One of :data:`ERRORS`, naming the problem; nothing is written then.
    """
    options = options or report.AnalysisOptions()
    with contextlib.ExitStack() as stack:
        tb = build_source_tiebreaker(tiebreak, stack) if tiebreak is not None else None
        if tb is not None:
            options = dataclasses.replace(options, tiebreak=tb)
        result = report.analyze(votes, options)
    report.write_report(result, out_dir)
    return result

