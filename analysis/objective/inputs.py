"""CSV inputs of the scoring commands, and file-safe names for what they write.

Every reader lists all the problems of a file in one ``ValueError`` and resolves
relative file paths against the CSV's own folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import frames

#: Columns of a stimuli CSV (``--stimuli``).
STIMULI_COLUMNS = ("content", "condition", "path")
#: Columns of the ``challenge-score`` inputs.
REAL_INPUT_COLUMNS = ("condition", "video", "output_path", "input_path")
SYNTH_INPUT_COLUMNS = ("condition", "video", "output_path", "target_path")


def read_paths_csv(path: str | Path, columns: Sequence[str], path_columns: Sequence[str], *,
                   must_exist: bool = False) -> pd.DataFrame:
    """A CSV of ``columns`` (read as text) whose ``path_columns`` name files.

    Relative file paths resolve against the CSV's folder. With ``must_exist``, files that
    are not there are listed (count and an example per column) in one ``ValueError``.

    Parameters
    ----------
    path : str or Path
        The CSV.
    columns : sequence of str
        Columns to keep (others are dropped), in this order.
    path_columns : sequence of str
        Those of ``columns`` that hold file paths.
    must_exist : bool
        Require every named file to exist.

    Returns
    -------
    DataFrame
        ``columns`` as strings (empty cells as ``""``), paths made absolute.

    Raises
    ------
    ValueError
        No such CSV, missing columns, or (``must_exist``) missing files.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing} (need {', '.join(columns)})")
    df = df.loc[:, list(columns)].copy()
    problems = []
    for col in path_columns:
        df[col] = [str(q if Path(q).is_absolute() else (p.parent / q).resolve()) for q in df[col]]
        absent = [q for q in df[col] if not Path(q).is_file()]
        if must_exist and absent:
            problems.append(f"{len(absent)} {col} file(s) not found, e.g. {absent[0]}")
    if problems:
        raise ValueError(f"{p}: " + "; ".join(problems))
    return df


def read_stimuli_csv(path: str | Path) -> pd.DataFrame:
    """``content, condition, path`` rows; relative paths resolve against the CSV's folder.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DataFrame
        As :func:`analysis.objective.inputs.stimuli_frame` returns it (files need not
        exist).

    Raises
    ------
    ValueError
        No such CSV, missing columns, or a repeated (content, condition).
    """
    return stimuli_frame(read_paths_csv(path, STIMULI_COLUMNS, ("path",)))


def read_s_obj_csv(path: str | Path) -> dict[str, float]:
    """``condition, s_obj`` (as ``challenge-score`` writes ``s_obj.csv``) → ``{condition: S_obj}``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to float

    Raises
    ------
    ValueError
        When the file is missing, lacks a column, or a value is missing or not a number.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such S_obj file")
    # Condition names are text ('NA' is a name), in NFC like the votes they are matched with.
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in ("condition", "s_obj") if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: missing column(s) {missing} (need condition, s_obj)")
    if frames.is_blank(df["condition"]).any():
        raise ValueError(f"{p}: {int(frames.is_blank(df['condition']).sum())} row(s) without a condition")
    values = pd.to_numeric(df["s_obj"], errors="coerce")
    bad = df.loc[values.isna(), "condition"].tolist()
    if bad:
        raise ValueError(f"{p}: S_obj missing or not a number for condition(s) {bad}")
    return dict(zip(frames.normalize_ids(df["condition"]), values.astype(float), strict=True))


def read_challenge_input(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A ``challenge-score`` input CSV; relative file paths resolve against its folder.

    ``columns`` are ``condition, video`` and then the file-path columns. Every problem
    (missing files, duplicate or empty keys) is listed in one ``ValueError``.

    Parameters
    ----------
    path : str or Path
        The CSV.
    columns : sequence of str
        Required columns (:data:`REAL_INPUT_COLUMNS` or :data:`SYNTH_INPUT_COLUMNS`).

    Returns
    -------
    DataFrame
        The rows, with the path columns resolved to existing files.

    Raises
    ------
    ValueError
        On missing columns or files, duplicate ``(condition, video)`` rows or empty keys.
    """
    df = read_paths_csv(path, columns, columns[2:], must_exist=True)
    problems = []
    dup = df.duplicated(["condition", "video"])
    if dup.any():
        problems.append(f"{int(dup.sum())} duplicate (condition, video) row(s)")
    empty = (df[["condition", "video"]] == "").any(axis=1)
    if empty.any():
        problems.append(f"{int(empty.sum())} row(s) with an empty condition or video")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return df


def safe_name(text: str) -> str:
    """``text`` with anything but ``A-Za-z0-9_.-`` replaced by ``_`` (for file names).

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        Runs of other characters become one ``_``; leading/trailing ``.``/``_`` are
        stripped; an empty result becomes ``x`` plus 8 hex digits of ``text``'s SHA-256.
    """
    out = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(text)).strip("._")
    if not out:
        out = "x" + hashlib.sha256(str(text).encode()).hexdigest()[:8]
    return out


def stimuli_frame(stimuli: pd.DataFrame | Mapping[tuple[str, str], Any]) -> pd.DataFrame:
    """Normalise stimuli to a frame with columns ``content``, ``condition``, ``path``.

    Accepts such a frame, or a mapping ``{(content, condition): path}``.

    Parameters
    ----------
    stimuli : DataFrame or mapping
        A frame with (at least) ``content, condition, path``, or
        ``{(content, condition): path}``.

    Returns
    -------
    DataFrame
        Exactly ``content, condition, path``, all strings (a copy); ``content`` and
        ``condition`` in Unicode NFC, as :func:`analysis.frames.validate` gives them.

    Raises
    ------
    ValueError
        When a column is missing or a (content, condition) repeats.
    """
    if isinstance(stimuli, pd.DataFrame):
        missing = {"content", "condition", "path"} - set(stimuli.columns)
        if missing:
            raise ValueError(f"stimuli frame lacks column(s) {sorted(missing)}")
        frame = stimuli.loc[:, ["content", "condition", "path"]].copy()
    else:
        frame = pd.DataFrame(
            [(str(c), str(k), str(p)) for (c, k), p in stimuli.items()], columns=["content", "condition", "path"]
        )
    # Ids in NFC, as analysis.frames.validate gives the votes they are matched with.
    frame["content"] = frames.normalize_ids(frame["content"].astype(str))
    frame["condition"] = frames.normalize_ids(frame["condition"].astype(str))
    frame["path"] = frame["path"].astype(str)
    dup = frame.duplicated(["content", "condition"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (content, condition) stimuli")
    return frame
