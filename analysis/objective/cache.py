"""Result cache and batch scoring.

Results are keyed by *(file sha256, scorer name, scorer version)*, so renaming or moving
a stimulus costs nothing, editing it invalidates exactly its entries, and a new scorer
version (new features, a newly fitted head) starts afresh. The store is one SQLite file
in a directory the caller chooses (``<dir>/scores.sqlite``); SQLite rather than JSON
because several processes (a CLI run, the web app's live leaderboard) may read it while
one writes.

Hashing a 10 s 720p clip takes tens of milliseconds, still far from free over thousands
of stimuli, so file hashes are memoised by (path, size, mtime) — a file touched in place
is re-hashed, one that did not change is not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import pandas as pd

from .base import N_AUX, PairScore, Scorer, ScorerError, StrPath, check_aux, combine_orders

ProgressFn = Callable[[int, int], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stimulus (
    sha256 TEXT NOT NULL, scorer TEXT NOT NULL, version TEXT NOT NULL,
    features TEXT NOT NULL, aux TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (sha256, scorer, version)
);
CREATE TABLE IF NOT EXISTS pair (
    sha256_a TEXT NOT NULL, sha256_b TEXT NOT NULL, scorer TEXT NOT NULL, version TEXT NOT NULL,
    p REAL NOT NULL, aux_a TEXT NOT NULL, aux_b TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (sha256_a, sha256_b, scorer, version)
);
"""


def file_sha256(path: StrPath, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks.

    Parameters
    ----------
    path : str or PathLike
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        Hex digest.

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ScoreCache:
    """SQLite store of scorer results under ``directory`` (created if missing).

    Use as a context manager or call :meth:`close`. ``hits`` and ``misses`` count lookups
    since opening, so callers (and tests) can see that a rerun scored nothing.

    Parameters
    ----------
    directory : str or PathLike
        Holds the database file :attr:`FILENAME` (created with its parents).
    """

    FILENAME = "scores.sqlite"

    def __init__(self, directory: StrPath) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.FILENAME
        import sqlite3

        self._conn = sqlite3.connect(self.path, timeout=30.0)
        # WAL lets readers in other processes proceed while this one writes.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- file identity ---------------------------------------------------------------

    def sha256(self, path: StrPath) -> str:
        """The file's SHA-256, re-hashed only when its size or mtime changed.

        Parameters
        ----------
        path : str or PathLike
            The file (symlinks resolved; the hash is remembered under the real path).

        Returns
        -------
        str
            Hex digest.

        Raises
        ------
        ScorerError
            When the file cannot be read.
        """
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise ScorerError(f"cannot read {path}: {exc}") from exc
        row = self._conn.execute("SELECT size, mtime_ns, sha256 FROM file_hash WHERE path = ?", (real,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return str(row[2])
        digest = file_sha256(real)
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO file_hash VALUES (?, ?, ?, ?)",
                (real, st.st_size, st.st_mtime_ns, digest),
            )
        return digest

    # -- per stimulus ----------------------------------------------------------------

    def get_stimulus(self, sha: str, scorer: str, version: str) -> tuple[dict[str, float], tuple[float, ...]] | None:
        """Cached ``(features, aux)`` of one file under one scorer version, or None.

        Parameters
        ----------
        sha : str
            The file's SHA-256.
        scorer, version : str
            Scorer name and version.

        Returns
        -------
        tuple of (dict, tuple of float) or None
            ``None`` on a miss (counted in ``misses``; a hit counts in ``hits``).
        """
        row = self._conn.execute(
            "SELECT features, aux FROM stimulus WHERE sha256 = ? AND scorer = ? AND version = ?",
            (sha, scorer, version),
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0]), tuple(json.loads(row[1]))

    def put_stimulus(
        self, sha: str, scorer: str, version: str, features: dict[str, float], aux: Sequence[float]
    ) -> None:
        """Store one file's ``(features, aux)``.

        Parameters
        ----------
        sha : str
            The file's SHA-256.
        scorer, version : str
            Scorer name and version.
        features : dict of str to float
        aux : sequence of float
            Replaces any earlier entry under the same key.
        """
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO stimulus VALUES (?, ?, ?, ?, ?, ?)",
                (sha, scorer, version, json.dumps(features), json.dumps(list(aux)), time.time()),
            )

    # -- per ordered pair ------------------------------------------------------------

    def get_pair(self, sha_a: str, sha_b: str, scorer: str, version: str) -> PairScore | None:
        """Cached ``compare(A, B)`` (ordered), or None.

        Parameters
        ----------
        sha_a, sha_b : str
            SHA-256 of A and B (order matters).
        scorer, version : str
            Scorer name and version.

        Returns
        -------
        PairScore or None
            ``None`` on a miss (counted in ``misses``; a hit counts in ``hits``).
        """
        row = self._conn.execute(
            "SELECT p, aux_a, aux_b FROM pair WHERE sha256_a = ? AND sha256_b = ? AND scorer = ? AND version = ?",
            (sha_a, sha_b, scorer, version),
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return PairScore(row[0], tuple(json.loads(row[1])), tuple(json.loads(row[2])))

    def put_pair(self, sha_a: str, sha_b: str, scorer: str, version: str, score: PairScore) -> None:
        """Store ``compare(A, B)`` (ordered).

        Parameters
        ----------
        sha_a, sha_b : str
            SHA-256 of A and B (order matters).
        scorer, version : str
            Scorer name and version.
        score : PairScore
            Replaces any earlier entry under the same key.
        """
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO pair VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sha_a,
                    sha_b,
                    scorer,
                    version,
                    score.p,
                    json.dumps(list(score.aux_a)),
                    json.dumps(list(score.aux_b)),
                    time.time(),
                ),
            )

    def count(self) -> dict[str, int]:
        """Number of stored stimulus and pair results.

        Returns
        -------
        dict
            ``{"stimulus": int, "pair": int}``.
        """
        n_stim = self._conn.execute("SELECT COUNT(*) FROM stimulus").fetchone()[0]
        n_pair = self._conn.execute("SELECT COUNT(*) FROM pair").fetchone()[0]
        return {"stimulus": int(n_stim), "pair": int(n_pair)}


# --------------------------------------------------------------------------- progress


def text_progress(stream: TextIO | None = None, width: int = 30, label: str = "scoring") -> ProgressFn:
    """A minimal progress bar ``scoring [#####.....] 12/40`` redrawn on one line.

    Parameters
    ----------
    stream : text file, optional
        Where to draw (default: ``sys.stderr``).
    width : int
        Characters of the bar.
    label : str
        Text before the bar.

    Returns
    -------
    callable
        ``show(done, total)``; ends the line once ``done >= total``.
    """
    out = stream or sys.stderr

    def show(done: int, total: int) -> None:
        filled = int(width * done / total) if total else width
        out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def _progress_fn(progress: ProgressFn | bool | None) -> ProgressFn | None:
    if progress is True:
        return text_progress()
    if progress is False or progress is None:
        return None
    return progress


# --------------------------------------------------------------------------- tasks
# Module-level so they pickle into worker processes.


def _stimulus_task(scorer: Scorer, path: str) -> tuple[dict[str, float], tuple[float, ...]]:
    return scorer.features(path), scorer.aux(path)


def _pair_task(scorer: Scorer, path_a: str, path_b: str) -> PairScore:
    return scorer.compare(path_a, path_b)


def _executor(workers: int, kind: Literal["process", "thread"]) -> Executor | None:
    if workers <= 1:
        return None
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": FFmpeg's decoder threads and torch do not survive fork() reliably.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run(
    tasks: dict[Any, tuple[Callable[..., Any], tuple[Any, ...]]],
    *,
    workers: int,
    executor: Literal["process", "thread"],
    on_result: Callable[[Any, Any], None],
    on_error: Callable[[Any, ScorerError], None],
    tick: Callable[[], None],
) -> None:
    pool = _executor(workers, executor)
    if pool is None:
        for key, (fn, args) in tasks.items():
            try:
                on_result(key, fn(*args))
            except ScorerError as exc:
                on_error(key, exc)
            tick()
        return
    futures = {pool.submit(fn, *args): key for key, (fn, args) in tasks.items()}
    try:
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                on_result(key, fut.result())
            except ScorerError as exc:
                on_error(key, exc)
            tick()
    finally:
        # On an error, drop queued work instead of finishing it; results already
        # stored in the cache are kept for the rerun.
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Tally:
    total: int
    fn: ProgressFn | None
    done: int = 0

    def tick(self) -> None:
        self.done += 1
        if self.fn is not None:
            self.fn(self.done, self.total)


def _aux_cols(prefix: str) -> list[str]:
    return [f"{prefix}{k}" for k in range(1, N_AUX + 1)]


# --------------------------------------------------------------------------- batch API


def score_stimuli(
    scorer: Scorer,
    paths: Iterable[StrPath],
    *,
    workers: int = 1,
    progress: ProgressFn | bool | None = None,
    cache: ScoreCache | None = None,
    executor: Literal["process", "thread"] = "process",
    errors: Literal["raise", "skip"] = "raise",
) -> pd.DataFrame:
    """Features and aux of every stimulus, scoring only what the cache lacks.

    Parameters
    ----------
    scorer : Scorer
    paths : iterable of str or PathLike
        Stimulus files (duplicates are scored once).
    workers : int
        Parallel workers (1: score in this process).
    progress : callable or bool, optional
        ``progress(done, total)`` over the files to score; ``True`` for
        :func:`text_progress`.
    cache : ScoreCache, optional
        Read before scoring and filled with the new results.
    executor : {"process", "thread"}
        Kind of pool used when ``workers > 1``.
    errors : {"raise", "skip"}
        ``"skip"`` records a file's :class:`ScorerError` in the ``error`` column instead
        of raising.

    Returns
    -------
    DataFrame
        One row per distinct path: ``path``, ``sha256`` (None without a cache),
        ``cached``, ``error``, ``aux_1..aux_11``, then the scorer's feature columns.

    Raises
    ------
    ScorerError
        With ``errors="raise"``, the first file the scorer fails on (or a file the cache
        cannot read).
    """
    unique = list(dict.fromkeys(os.fspath(p) for p in paths))
    results: dict[str, tuple[dict[str, float], tuple[float, ...]]] = {}
    failed: dict[str, str] = {}
    cached: set[str] = set()
    shas: dict[str, str | None] = {}
    tasks: dict[Any, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
    for path in unique:
        sha = cache.sha256(path) if cache is not None else None
        shas[path] = sha
        hit = cache.get_stimulus(sha, scorer.name, scorer.version) if cache is not None and sha else None
        if hit is not None:
            results[path] = hit
            cached.add(path)
        else:
            tasks[path] = (_stimulus_task, (scorer, path))
    tally = _Tally(len(tasks), _progress_fn(progress))

    def keep(path: str, value: tuple[dict[str, float], tuple[float, ...]]) -> None:
        feats, aux = value[0], check_aux(value[1], what=f"aux of {path} from {scorer.name}")
        results[path] = (feats, aux)
        sha = shas[path]
        if cache is not None and sha is not None:
            cache.put_stimulus(sha, scorer.name, scorer.version, feats, aux)

    def fail(path: str, exc: ScorerError) -> None:
        if errors == "raise":
            raise exc
        failed[path] = str(exc)

    _run(tasks, workers=workers, executor=executor, on_result=keep, on_error=fail, tick=tally.tick)
    rows = []
    for path in unique:
        row: dict[str, Any] = {"path": path, "sha256": shas[path], "cached": path in cached}
        row["error"] = failed.get(path)
        if path in results:
            feats, aux = results[path]
            row.update(zip(_aux_cols("aux_"), aux, strict=True))
            row.update(feats)
        rows.append(row)
    return pd.DataFrame(rows)


def score_pairs(
    scorer: Scorer,
    pairs: Iterable[tuple[StrPath, StrPath]],
    *,
    workers: int = 1,
    progress: ProgressFn | bool | None = None,
    cache: ScoreCache | None = None,
    symmetric: bool = True,
    executor: Literal["process", "thread"] = "process",
    errors: Literal["raise", "skip"] = "raise",
) -> pd.DataFrame:
    """Score many (A, B) pairs in parallel, reusing cached results.

    Scorers with ``compare_features`` (the handcrafted scorer, fitted heads) are run once
    per distinct stimulus and their pairs assembled afterwards; others are run per
    ordered pair — both orders when ``symmetric``.

    Parameters
    ----------
    scorer
        Any :class:`~analysis.objective.base.Scorer`.
    pairs
        ``(path_a, path_b)`` tuples.
    workers
        Parallel workers (processes by default; ``executor="thread"`` for scorers that
        release the GIL, e.g. the checkpoint adapter on a GPU). Processes are started
        with "spawn", so a script calling this needs the usual
        ``if __name__ == "__main__":`` guard; the scorer must pickle (the built-ins do).
    progress
        ``callable(done, total)``, ``True`` for a text bar on stderr, or None.
    cache
        A :class:`ScoreCache`; without one, everything is scored.
    symmetric
        Report ``p`` as p_sym = (p(A,B) + 1 − p(B,A)) / 2 (PROTOCOL.md §4).
    errors
        ``"raise"`` (default) stops at the first :class:`ScorerError` (results so far
        are cached); ``"skip"`` records the message in the ``error`` column.

    Returns
    -------
    DataFrame
        One row per input pair: ``path_a``, ``path_b``, ``p``, ``p_ab``, ``p_ba`` (NaN when
        not symmetric), ``aux_a_1..11``, ``aux_b_1..11``, ``error``.
    """
    pair_list = [(os.fspath(a), os.fspath(b)) for a, b in pairs]
    if hasattr(scorer, "compare_features"):
        return _pairs_via_stimuli(scorer, pair_list, workers, progress, cache, symmetric, executor, errors)
    ordered = list(dict.fromkeys(pair_list + ([(b, a) for a, b in pair_list] if symmetric else [])))
    shas: dict[str, str | None] = {}
    if cache is not None:
        for path in dict.fromkeys(p for ab in ordered for p in ab):
            shas[path] = cache.sha256(path)
    results: dict[tuple[str, str], PairScore] = {}
    failed: dict[tuple[str, str], str] = {}
    tasks: dict[Any, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
    for a, b in ordered:
        hit = None
        if cache is not None:
            hit = cache.get_pair(shas[a] or "", shas[b] or "", scorer.name, scorer.version)
        if hit is not None:
            results[(a, b)] = hit
        else:
            tasks[(a, b)] = (_pair_task, (scorer, a, b))
    tally = _Tally(len(tasks), _progress_fn(progress))

    def keep(key: tuple[str, str], score: PairScore) -> None:
        results[key] = score
        if cache is not None:
            cache.put_pair(shas[key[0]] or "", shas[key[1]] or "", scorer.name, scorer.version, score)

    def fail(key: tuple[str, str], exc: ScorerError) -> None:
        if errors == "raise":
            raise exc
        failed[key] = str(exc)

    _run(tasks, workers=workers, executor=executor, on_result=keep, on_error=fail, tick=tally.tick)
    return _pair_frame(pair_list, results, failed, symmetric)


def _pairs_via_stimuli(
    scorer: Any,
    pair_list: list[tuple[str, str]],
    workers: int,
    progress: ProgressFn | bool | None,
    cache: ScoreCache | None,
    symmetric: bool,
    executor: Literal["process", "thread"],
    errors: Literal["raise", "skip"],
) -> pd.DataFrame:
    paths = list(dict.fromkeys(p for ab in pair_list for p in ab))
    stim = score_stimuli(
        scorer, paths, workers=workers, progress=progress, cache=cache, executor=executor, errors=errors
    )
    aux_cols = _aux_cols("aux_")
    feature_cols = [c for c in stim.columns if c not in {"path", "sha256", "cached", "error", *aux_cols}]
    per: dict[str, tuple[dict[str, float], tuple[float, ...]]] = {}
    failed_stim: dict[str, str] = {}
    for row in stim.to_dict("records"):
        if row["error"] is not None and not (isinstance(row["error"], float) and np.isnan(row["error"])):
            failed_stim[row["path"]] = row["error"]
            continue
        per[row["path"]] = (
            {c: float(row[c]) for c in feature_cols},
            tuple(float(row[c]) for c in aux_cols),
        )
    results: dict[tuple[str, str], PairScore] = {}
    failed: dict[tuple[str, str], str] = {}
    for a, b in pair_list:
        bad = [failed_stim[p] for p in (a, b) if p in failed_stim]
        if bad:
            failed[(a, b)] = "; ".join(bad)
            continue
        results[(a, b)] = scorer.compare_features(per[a][0], per[b][0], per[a][1], per[b][1])
        if symmetric:
            results[(b, a)] = scorer.compare_features(per[b][0], per[a][0], per[b][1], per[a][1])
    return _pair_frame(pair_list, results, failed, symmetric)


def _pair_frame(
    pair_list: list[tuple[str, str]],
    results: dict[tuple[str, str], PairScore],
    failed: dict[tuple[str, str], str],
    symmetric: bool,
) -> pd.DataFrame:
    rows = []
    for a, b in pair_list:
        row: dict[str, Any] = {"path_a": a, "path_b": b}
        ab = results.get((a, b))
        ba = results.get((b, a)) if symmetric else None
        error = failed.get((a, b)) or (failed.get((b, a)) if symmetric else None)
        if ab is None or (symmetric and ba is None):
            row.update(p=np.nan, p_ab=np.nan, p_ba=np.nan, error=error or "not scored")
            rows.append(row)
            continue
        combined = combine_orders(ab, ba) if ba is not None else ab
        row.update(p=combined.p, p_ab=ab.p, p_ba=ba.p if ba is not None else np.nan, error=None)
        row.update(zip(_aux_cols("aux_a_"), combined.aux_a, strict=True))
        row.update(zip(_aux_cols("aux_b_"), combined.aux_b, strict=True))
        rows.append(row)
    columns = ["path_a", "path_b", "p", "p_ab", "p_ba", *_aux_cols("aux_a_"), *_aux_cols("aux_b_"), "error"]
    return pd.DataFrame(rows).reindex(columns=columns)


@contextlib.contextmanager
def open_cache(directory: str | Path | None) -> Iterator[ScoreCache]:
    """A :class:`ScoreCache` in ``directory``, or in a temporary one removed afterwards.

    Parameters
    ----------
    directory : str or Path, optional
        Cache directory; ``None`` for a throw-away cache.

    Yields
    ------
    ScoreCache
        Closed on exit.
    """
    if directory is not None:
        with ScoreCache(directory) as cache:
            yield cache
        return
    with tempfile.TemporaryDirectory(prefix="panelrank-scores-") as tmp, ScoreCache(tmp) as cache:
        yield cache
