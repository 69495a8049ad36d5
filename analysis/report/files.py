"""Reading the input of an analysis and writing the report directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from analysis import aggregate, frames
from analysis.report.page import render_html
from analysis.report.result import REPORT_FILES, AnalysisResult, ranking_frame


def is_pair_table(df: pd.DataFrame) -> bool:
    """A pair table has ``cond_a, cond_b`` but no per-vote ``pref``.

    Parameters
    ----------
    df : DataFrame

    Returns
    -------
    bool
    """
    cols = set(map(str, df.columns))
    return {"cond_a", "cond_b"} <= cols and "pref" not in cols


def read_input(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read votes (``.csv``/``.parquet``), a pair table, or an NTIRE result file (``.txt``).

    Nothing is validated here (:func:`analyze` does it, listing every problem).

    Parameters
    ----------
    path : str or Path
        ``.txt`` is read as an NTIRE result file, anything else by
        :func:`analysis.frames.read_table` (Parquet, or CSV with ids read as text).

    Returns
    -------
    frame : DataFrame
    published : DataFrame or None
        For an NTIRE file: the published BT scores as ``condition, score`` (centred
        logs of the published strengths).

    Raises
    ------
    frames.FrameError
        When the file is missing or cannot be parsed.
    """
    path = Path(path)
    if path.suffix.lower() != ".txt":
        return frames.read_table(path), None  # ids as text: a condition named "NA" is that name
    if not path.is_file():
        raise frames.FrameError([f"{path}: no such file"])
    try:
        res = aggregate.read_ntire(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise frames.FrameError([f"{path}: cannot be read: {exc}"]) from exc
    pub = None
    if len(res.published):
        pub = res.published[["condition", "log_vote"]].rename(columns={"log_vote": "score"})
    return res.pairs[["cond_a", "cond_b", "n", "mean_pref"]].copy(), pub



def write_report(result: AnalysisResult, out_dir: str | Path) -> Path:
    """Write ``scores.csv``, ``ranking.csv``, ``raters.csv`` and ``report.html`` to ``out_dir``.

    Everything is rendered into a temporary directory next to ``out_dir`` first; a new
    ``out_dir`` then appears in one rename, an existing one gets each file replaced by a
    rename. A failure while rendering leaves ``out_dir`` untouched.

    Parameters
    ----------
    result : AnalysisResult
        What :func:`analyze` returned.
    out_dir : str or Path
        Report directory (created, with its parents, when missing).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    NotADirectoryError
        When ``out_dir`` exists and is not a directory.
    OSError
        When a file cannot be written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mkdtemp makes the directory private (0700); the report directory gets the usual mode.
        tmp.chmod(0o777 & ~_umask())
        result.scores.to_csv(tmp / "scores.csv", index=False)
        ranking_frame(result).to_csv(tmp / "ranking.csv", index=False)
        result.raters.to_csv(tmp / "raters.csv", index=False)
        (tmp / "report.html").write_text(render_html(result), encoding="utf-8")
        if not out.exists():
            try:
                tmp.rename(out)
                return out
            except OSError:  # created concurrently: fall through to per-file replacement
                out.mkdir(exist_ok=True)
        for name in REPORT_FILES:
            os.replace(tmp / name, out / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
