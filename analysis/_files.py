"""Writing files so that a failure never leaves a half-written one behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary name next to ``path``, then rename it to ``path``.

    The parent directory is created when missing; the temporary file is removed whatever happens.

    Parameters
    ----------
    path : str or Path
        Destination file.
    write : callable
        ``write(tmp)`` writes the whole content to the temporary path ``tmp``
        (``.<name>.tmp`` in the same directory); its return value is ignored.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    Exception
        Whatever ``write`` raises (``path`` is then left untouched).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        write(tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """``frame.to_csv(path, index=False)``, atomically (see :func:`atomic_write`).

    Parameters
    ----------
    frame : DataFrame
        Written without its index.
    path : str or Path
        Destination file (parent directories are created).

    Returns
    -------
    Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
