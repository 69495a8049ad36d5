"""The tidy vote frames: the only seam between the web study and the analysis.

Two layouts exist (see DESIGN.md):

* **pairwise** — one row per answered side-by-side trial, ``pref`` relative to
  ``(cond_a, cond_b)``; positive means ``cond_a`` was preferred.
* **ratings** — one row per answered single-stimulus trial, ``score`` on the
  method's scale.

This module owns the schema. Every frame that enters :mod:`analysis` — an export
from the web app or a CSV from any other tool — goes through :func:`validate`,
which raises one :class:`FrameError` listing *every* problem it found.

Validated votes are a type: :func:`validate` returns a :class:`Votes`, a read-only
``pandas.DataFrame`` that carries its layout (``kind``). Every public function of
:mod:`analysis` that takes votes calls :func:`validate`, which checks a plain frame
and hands a :class:`Votes` of the asked layout back as it is, so a frame is checked
once however many functions it passes through::

    votes = frames.validate(raw)          # checked here, once
    sr = screening.screen(votes)          # not checked again
    fit = bradley_terry.fit(screening.main_votes(votes))

Only :func:`validate` and :meth:`Votes.rows` (a row subset of valid votes is valid)
make a :class:`Votes`. Anything pandas derives from one (a slice, ``copy()``,
``assign``, ``concat``, a merge, ...) is a plain ``DataFrame`` again and is checked
when it enters the next function: it may no longer follow the schema. Changing a
:class:`Votes` in place (``votes["pref"] = …``, ``.loc[…] = …``, ``inplace=True``)
raises ``TypeError``; change a ``copy()`` and validate that.

Identifiers (study, rater, session, content, conditions, reason) are text. A CSV is
read with :func:`read_table`: a condition or rater called ``NA``, ``None``, ``null``
or ``nan`` is that name, and only an empty cell is missing. :func:`validate` puts every
identifier in Unicode NFC, so ``café`` typed composed or decomposed is one id.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from analysis._files import atomic_write, write_csv
from analysis.methods import METHODS, Kind

_COMMON_HEAD = ("study", "rater", "session", "trial", "content")
_COMMON_TAIL = ("repeat_of", "gold_expected", "answered_at", "watch_ms", "stalls")

#: Column order of each layout, exactly as DESIGN.md lists it.
PAIRWISE_COLUMNS: tuple[str, ...] = (
    *_COMMON_HEAD,
    "cond_a",
    "cond_b",
    "pref",
    "method",
    "reason",
    "shown_left",
    *_COMMON_TAIL,
)
RATINGS_COLUMNS: tuple[str, ...] = (
    *_COMMON_HEAD,
    "cond",
    "score",
    "method",
    *_COMMON_TAIL,
)

# Columns that must never be empty; the others may hold nulls.
_REQUIRED_VALUES = {
    "pairwise": ("rater", "trial", "content", "cond_a", "cond_b", "pref", "method"),
    "ratings": ("rater", "trial", "content", "cond", "score", "method"),
}
_STRING_COLUMNS = ("study", "rater", "session", "content", "cond_a", "cond_b", "cond", "method", "reason")
#: Columns a CSV reader must take as text, verbatim: only an empty cell is missing there.
TEXT_COLUMNS: tuple[str, ...] = (*_STRING_COLUMNS, "shown_left")
#: Cells pandas reads as missing by default; still missing in the numeric and time columns.
NA_TOKENS: tuple[str, ...] = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)
_INT_COLUMNS = ("trial", "repeat_of", "watch_ms", "stalls")
#: Columns renamed since votes files were first written (old name → name now). :func:`read_table`
#: reads a file that has an old name, and not the new one, under the new name: ``scale`` became
#: ``method`` when the test method got one name in the manifest, database, frames and export.
RENAMED_COLUMNS: dict[str, str] = {"scale": "method"}
SHOWN_LEFT_VALUES = ("a", "b")


class FrameError(ValueError):
    """A frame does not follow the schema. ``problems`` lists every issue found.

    Parameters
    ----------
    problems : list of str
        Every issue found, kept as the ``problems`` attribute.
    kind : {"pairwise", "ratings"}, optional
        The layout checked against (named in the message), kept as ``kind``.
    """

    def __init__(self, problems: list[str], kind: str | None = None):
        self.problems = list(problems)
        self.kind = kind
        head = f"invalid {kind} frame" if kind else "invalid vote frame"
        super().__init__(f"{head}: {len(self.problems)} problem(s):\n- " + "\n- ".join(self.problems))


def _read_only(*_args: object, **_kwargs: object) -> None:
    raise TypeError("a Votes frame is read-only: change votes.copy() (a plain DataFrame) and validate that")


class _ReadOnlyIndexer:
    """``.loc``/``.iloc``/``.at``/``.iat`` of a :class:`Votes`: reads as pandas does, refuses writes."""

    def __init__(self, indexer: object):
        self._indexer = indexer

    def __getitem__(self, key: object) -> object:
        return self._indexer[key]  # type: ignore[index]

    __setitem__ = _read_only

    def __call__(self, axis: object = None) -> _ReadOnlyIndexer:
        return _ReadOnlyIndexer(self._indexer(axis))  # type: ignore[operator]

    def __getattr__(self, name: str) -> object:
        if name == "_setitem_with_indexer":  # the path every indexed write takes inside pandas
            _read_only()
        return getattr(self._indexer, name)


class Votes(pd.DataFrame):
    """A vote frame :func:`validate` checked: public functions take it without checking again.

    A read-only ``pandas.DataFrame`` (layout columns first in schema order, canonical
    dtypes, identifiers in NFC, one row per answered trial) with its layout in
    :attr:`kind`. Made only by :func:`validate` and :meth:`rows`; ``Votes(df)`` raises.
    Whatever pandas derives from it is a plain ``DataFrame`` (``_constructor``), so a
    derived frame is validated again where it is used; in-place changes raise ``TypeError``.
    """

    # Kept through pickling; derived frames are plain DataFrames, so it never reaches them.
    _metadata: ClassVar[list[str]] = ["_kind"]

    def __init__(self, *args: object, **kwargs: object):
        raise TypeError("Votes are made by analysis.frames.validate(df), which checks the frame first")

    @classmethod
    def _checked(cls, df: pd.DataFrame, kind: Kind) -> Votes:
        """Wrap a frame :func:`validate` has just checked (shares its data: copy-on-write)."""
        obj = cls.__new__(cls)
        pd.DataFrame.__init__(obj, df)
        object.__setattr__(obj, "_kind", kind)
        return obj

    @property
    def kind(self) -> Kind:
        """The layout: ``"pairwise"`` or ``"ratings"``."""
        return self._kind

    def rows(self, mask: np.ndarray | pd.Series) -> Votes:
        """The rows where ``mask`` is true, still validated, numbered from 0 as :func:`validate` does.

        Parameters
        ----------
        mask : array or Series of bool
            One entry per row, in row order.

        Returns
        -------
        Votes
            A subset of valid rows is valid: nothing is checked again.
        """
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"mask has shape {keep.shape}, expected ({len(self)},)")
        return Votes._checked(pd.DataFrame(self)[keep].reset_index(drop=True), self.kind)

    @property
    def loc(self) -> _ReadOnlyIndexer:  # type: ignore[override]
        return _ReadOnlyIndexer(super().loc)

    @property
    def iloc(self) -> _ReadOnlyIndexer:  # type: ignore[override]
        return _ReadOnlyIndexer(super().iloc)

    @property
    def at(self) -> _ReadOnlyIndexer:  # type: ignore[override]
        return _ReadOnlyIndexer(super().at)

    @property
    def iat(self) -> _ReadOnlyIndexer:  # type: ignore[override]
        return _ReadOnlyIndexer(super().iat)

    def __setattr__(self, name: str, value: object) -> None:
        # Setting an existing column by attribute goes through __setitem__; these two replace an axis.
        if name in ("index", "columns"):
            _read_only()
        super().__setattr__(name, value)

    # Every other in-place change of a DataFrame goes through one of these.
    __setitem__ = __delitem__ = insert = isetitem = _set_value = _update_inplace = _read_only  # type: ignore[assignment]


def _refusing_inplace(name: str) -> Callable[..., object]:
    """``DataFrame.<name>`` that refuses ``inplace=True`` before pandas touches any data."""
    method = getattr(pd.DataFrame, name)

    @functools.wraps(method)
    def guarded(self: Votes, *args: object, **kwargs: object) -> object:
        if kwargs.get("inplace"):
            _read_only()
        return method(self, *args, **kwargs)

    return guarded


# Some of these change the data before they would reach _update_inplace (fillna, replace, ...).
for _name in ("bfill", "clip", "drop", "drop_duplicates", "dropna", "eval", "ffill", "fillna", "interpolate", "mask",
              "query", "rename", "rename_axis", "replace", "reset_index", "set_index", "sort_index", "sort_values",
              "where"):
    setattr(Votes, _name, _refusing_inplace(_name))


def columns_for(kind: Kind) -> tuple[str, ...]:
    """The column order of a layout.

    Parameters
    ----------
    kind : {"pairwise", "ratings"}

    Returns
    -------
    tuple of str
        :data:`PAIRWISE_COLUMNS` or :data:`RATINGS_COLUMNS`.
    """
    return PAIRWISE_COLUMNS if kind == "pairwise" else RATINGS_COLUMNS


def detect_kind(df: pd.DataFrame) -> Kind:
    """Tell a pairwise frame from a ratings frame by its columns.

    Parameters
    ----------
    df : DataFrame

    Returns
    -------
    {"pairwise", "ratings"}
        ``"pairwise"`` when it has ``cond_a, cond_b, pref``, else ``"ratings"`` when it
        has ``cond, score``.

    Raises
    ------
    FrameError
        When the columns fit neither layout.
    """
    if isinstance(df, Votes):
        return df.kind
    cols = set(df.columns)
    if {"cond_a", "cond_b", "pref"} <= cols:
        return "pairwise"
    if {"cond", "score"} <= cols:
        return "ratings"
    raise FrameError(
        ["columns fit neither layout: a pairwise frame needs cond_a, cond_b, pref; "
         f"a ratings frame needs cond, score (got: {', '.join(map(str, df.columns)) or 'none'})"]
    )


def empty_frame(kind: Kind) -> pd.DataFrame:
    """A valid frame with no rows and the layout's columns and dtypes.

    Parameters
    ----------
    kind : {"pairwise", "ratings"}

    Returns
    -------
    DataFrame
    """
    return coerce(pd.DataFrame({c: [] for c in columns_for(kind)}), kind)


def coerce(df: pd.DataFrame, kind: Kind) -> pd.DataFrame:
    """Give the layout's columns their canonical dtypes (nullable ints, strings, UTC times).

    Values that cannot be converted become null here and are reported by :func:`validate`.

    Parameters
    ----------
    df : DataFrame
        Not modified; missing layout columns are skipped, extra columns kept as they are.
    kind : {"pairwise", "ratings"}

    Returns
    -------
    DataFrame
        A converted copy.
    """
    out = df.copy()
    for col in columns_for(kind):
        if col not in out.columns:
            continue
        if col in _STRING_COLUMNS:
            out[col] = out[col].astype("string")
        elif col in _INT_COLUMNS or col == "pref" or col == "gold_expected":
            out[col] = _to_nullable_int(out[col])
        elif col == "score":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("Float64")
        elif col == "answered_at":
            out[col] = pd.to_datetime(out[col], errors="coerce", utc=True)
        elif col == "shown_left":
            out[col] = out[col].astype("string").str.lower()
    return out


def _to_nullable_int(s: pd.Series) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    whole = num.isna() | (np.floor(num) == num)
    # Keep non-whole numbers as NaN-free floats so validation can report them.
    return num.astype("Int64") if bool(whole.all()) else num


def _problems(df: pd.DataFrame, kind: Kind, raw: pd.DataFrame | None = None) -> list[str]:
    """Every schema problem of ``df`` (ids already in NFC; ``raw``: the frame as given)."""
    problems: list[str] = []
    missing = [c for c in columns_for(kind) if c not in df.columns]
    if missing:
        old = [f"'{o}' (now '{n}')" for o, n in RENAMED_COLUMNS.items() if n in missing and o in df.columns]
        hint = f"; found the old name {', '.join(old)}: rename it, or read the file with read_votes" if old else ""
        problems.append(f"missing column(s): {', '.join(missing)}{hint}")
    present = set(df.columns)
    for col in _REQUIRED_VALUES[kind]:
        if col in present:
            empty = is_blank(df[col])
            if empty.any():
                problems.append(_rows_msg(empty, f"column '{col}' is empty"))
    if "method" in present:
        problems += _method_problems(df, kind)
    for col in ("trial", "repeat_of", "watch_ms", "stalls", "gold_expected", "pref"):
        if col in present:
            problems += _int_problems(df, col)
    for col in ("watch_ms", "stalls"):
        if col in present:
            neg = pd.to_numeric(df[col], errors="coerce") < 0
            if neg.any():
                problems.append(_rows_msg(neg.fillna(False), f"column '{col}' is negative"))
    if kind == "pairwise" and {"cond_a", "cond_b"} <= present:
        same = (df["cond_a"] == df["cond_b"]).fillna(False).astype(bool)
        lookalike = pd.Series(False, index=df.index)
        if raw is not None and raw is not df:
            lookalike = same & (raw["cond_a"] != raw["cond_b"]).fillna(False).astype(bool)
        if (same & ~lookalike).any():
            problems.append(_rows_msg(same & ~lookalike, "cond_a equals cond_b"))
        if lookalike.any():
            names = ", ".join(repr(str(v)) for v in sorted(set(df.loc[lookalike, "cond_a"]))[:5])
            problems.append(_rows_msg(lookalike, f"cond_a and cond_b are one condition ({names}) written in two "
                                                 "Unicode forms (ids are compared in NFC)"))
    if kind == "pairwise" and "shown_left" in present:
        bad = df["shown_left"].notna() & ~df["shown_left"].astype("string").str.lower().isin(SHOWN_LEFT_VALUES)
        if bad.any():
            problems.append(_rows_msg(bad.fillna(False), "shown_left must be 'a' or 'b'"))
    if "answered_at" in present:
        raw = df["answered_at"]
        parsed = pd.to_datetime(raw, errors="coerce", utc=True)
        bad = raw.notna() & parsed.isna()
        if bad.any():
            problems.append(_rows_msg(bad, "answered_at is not a timestamp"))
    if {"rater", "trial", "session"} <= present and len(df):
        dup = df.duplicated(subset=["session", "trial"], keep=False) & df["session"].notna()
        if dup.any():
            problems.append(_rows_msg(dup, "duplicate (session, trial): one row per answered trial"))
    return problems


def is_blank(s: pd.Series) -> pd.Series:
    """Which values of an id column are empty: missing, or text with nothing but white space.

    Parameters
    ----------
    s : Series

    Returns
    -------
    Series of bool
        Same index. ``"NA"`` or ``"None"`` are names, not blanks.
    """
    blank = s.isna()
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        blank = blank | s.astype("string").str.strip().eq("").fillna(False)
    return blank.astype(bool)


def normalize_id(value: str) -> str:
    """An identifier in Unicode NFC, the form :func:`validate` gives every id.

    Parameters
    ----------
    value : str

    Returns
    -------
    str
        ``unicodedata.normalize("NFC", value)``: ``"cafe\u0301"`` becomes ``"caf\u00e9"``.
    """
    return unicodedata.normalize("NFC", value)


def normalize_ids(s: pd.Series) -> pd.Series:
    """A column of identifiers with every text value in Unicode NFC (others untouched).

    Parameters
    ----------
    s : Series

    Returns
    -------
    Series
        ``s`` itself when nothing needs normalising, else a normalised copy. Only the
        distinct values are checked, so a long column costs little.
    """
    changed = {v: normalize_id(v) for v in s.dropna().unique()
               if isinstance(v, str) and not unicodedata.is_normalized("NFC", v)}
    return s.replace(changed) if changed else s


def _normalised(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text columns in NFC (a copy only when something changes)."""
    out = df
    for col in _STRING_COLUMNS:
        if col in df.columns:
            s = normalize_ids(df[col])
            if s is not df[col]:
                if out is df:
                    out = df.copy()
                out[col] = s
    return out


def _method_problems(df: pd.DataFrame, kind: Kind) -> list[str]:
    problems: list[str] = []
    value_col = "pref" if kind == "pairwise" else "score"
    names_of = df["method"].astype("string")
    unknown = names_of.notna() & ~names_of.isin(list(METHODS))
    if unknown.any():
        names = sorted(set(names_of[unknown]))
        problems.append(_rows_msg(unknown, f"unknown test method {names} in 'method'; known: {', '.join(METHODS)}"))
    wrong_kind = names_of.isin([m for m, e in METHODS.items() if e.kind != kind])
    if wrong_kind.any():
        problems.append(_rows_msg(wrong_kind, f"method of the other layout in a {kind} frame"))
    if value_col not in df.columns:
        return problems
    values = pd.to_numeric(df[value_col], errors="coerce")
    off = pd.Series(False, index=df.index)
    for name, method in METHODS.items():
        rows = (names_of == name).fillna(False) & values.notna()
        if rows.any():
            off |= rows & ~method.contains(values.to_numpy(dtype=float, na_value=np.nan))
    if off.any():
        problems.append(_rows_msg(off, f"'{value_col}' outside its scale's range"))
    return problems


def _int_problems(df: pd.DataFrame, col: str) -> list[str]:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    not_number = raw.notna() & num.isna()
    not_whole = num.notna() & (np.floor(num) != num)
    problems = []
    if not_number.any():
        problems.append(_rows_msg(not_number, f"column '{col}' is not a number"))
    if not_whole.any():
        problems.append(_rows_msg(not_whole, f"column '{col}' is not a whole number"))
    return problems


def _rows_msg(mask: pd.Series, what: str, show: int = 5) -> str:
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    listed = ", ".join(str(r) for r in rows[:show])
    more = f" and {len(rows) - show} more" if len(rows) > show else ""
    return f"{what} in {len(rows)} row(s) (rows {listed}{more})"


def validate(df: pd.DataFrame, kind: Kind | None = None) -> Votes:
    """Check a vote frame against the schema and return it, with canonical dtypes, as :class:`Votes`.

    A :class:`Votes` of the asked layout is returned as it is: it was checked when it was
    made and cannot have changed since (it is read-only). So every public function calls
    this on its input, and a frame is checked once however many of them it passes through.

    Parameters
    ----------
    df : DataFrame
        Pairwise or ratings votes. Extra columns are kept untouched.
    kind : {"pairwise", "ratings"}, optional
        The expected layout; detected from the columns when omitted.

    Returns
    -------
    Votes
        The same rows, layout columns first in schema order, with canonical dtypes;
        identifiers in Unicode NFC (see :func:`normalize_id`).

    Raises
    ------
    FrameError
        Listing every problem found (missing columns, empty or blank required values,
        values off their scale, non-integers, duplicate trials, a pair whose two
        conditions differ only in their Unicode form, ...).
    """
    if not isinstance(df, pd.DataFrame):
        raise FrameError([f"expected a pandas DataFrame, got {type(df).__name__}"])
    if isinstance(df, Votes) and kind in (None, df.kind):
        return df
    kind = kind or detect_kind(df)
    raw, df = df, _normalised(df)
    problems = _problems(df, kind, raw)
    if problems:
        raise FrameError(problems, kind)
    cols = list(columns_for(kind))
    extra = [c for c in df.columns if c not in cols]
    return Votes._checked(coerce(df[cols + extra], kind).reset_index(drop=True), kind)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a votes file or pair table (``.csv`` or ``.parquet``) as it is, without validating it.

    In a CSV the text columns (:data:`TEXT_COLUMNS`: ids, method, reason, shown_left)
    are read verbatim as strings: ``NA``, ``None``, ``null``, ``nan`` there are names and
    only an empty cell is missing. Every other column parses missing values as pandas
    does by default (:data:`NA_TOKENS`), so ``repeat_of`` or ``gold_expected`` written
    as ``NA`` are still missing. Columns under an old name (:data:`RENAMED_COLUMNS`) come
    back under their name now.

    Parameters
    ----------
    path : str or Path
        ``.parquet`` is read as Parquet (its strings are strings already), anything
        else as CSV.

    Returns
    -------
    DataFrame

    Raises
    ------
    FrameError
        If the file is missing or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise FrameError([f"{path}: no such file"])
    try:
        if path.suffix.lower() == ".parquet":
            return _renamed(pd.read_parquet(path))
        header = pd.read_csv(path, nrows=0).columns
        text = [c for c in header if RENAMED_COLUMNS.get(c, c) in TEXT_COLUMNS]
        na_values = {c: [""] if c in text else list(NA_TOKENS) for c in header}
        table = pd.read_csv(path, dtype=dict.fromkeys(text, "string"), keep_default_na=False, na_values=na_values)
    except Exception as exc:  # any parser failure means a bad file to the user
        raise FrameError([f"{path}: cannot be read as {path.suffix or 'csv'}: {exc}"]) from exc
    return _renamed(table)


def _renamed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its old column names (:data:`RENAMED_COLUMNS`) replaced, unless the new one is there too."""
    renames = {old: new for old, new in RENAMED_COLUMNS.items() if old in df.columns and new not in df.columns}
    return df.rename(columns=renames) if renames else df


def read_votes(path: str | Path, kind: Kind | None = None) -> Votes:
    """Read a votes file (``.csv`` or ``.parquet``) and validate it.

    Parameters
    ----------
    path : str or Path
        ``.parquet`` is read as Parquet, anything else as CSV (text columns verbatim,
        see :func:`read_table`).
    kind : {"pairwise", "ratings"}, optional
        Expected layout (detected from the columns when omitted).

    Returns
    -------
    Votes
        As :func:`validate` returns it.

    Raises
    ------
    FrameError
        If the file is missing, cannot be parsed or does not follow the schema.
    """
    return validate(read_table(path), kind)


def write_votes(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate a frame and write it as ``.csv`` or ``.parquet`` (chosen by suffix).

    The file is written to a temporary name first and renamed, so a failure never
    leaves a half-written file behind.

    Parameters
    ----------
    df : DataFrame
        Votes of either layout.
    path : str or Path
        Destination ending in ``.csv`` or ``.parquet``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        When ``path`` has another suffix.
    FrameError
        When the frame does not follow the schema.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: the output must end in .csv or .parquet")
    frame = validate(df)
    if suffix == ".parquet":
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return write_csv(frame, path)


def conditions(df: pd.DataFrame) -> list[str]:
    """Sorted condition names appearing in a frame of either layout.

    Parameters
    ----------
    df : DataFrame
        Pairwise (``cond_a``/``cond_b``) or ratings (``cond``) votes; nulls are ignored.

    Returns
    -------
    list of str

    Raises
    ------
    FrameError
        When the columns fit neither layout.
    """
    kind = detect_kind(df)
    cols: Iterable[str] = ("cond_a", "cond_b") if kind == "pairwise" else ("cond",)
    names: set[str] = set()
    for col in cols:
        names.update(str(c) for c in df[col].dropna().unique())  # distinct values only: cheap on big frames
    return sorted(names)
