"""The challenge's objective score, exactly as PROTOCOL.md §4 (seed §2.6, Eqs. 2–4).

For one condition (a challenge method) with outputs ``ŷ_i`` on real inputs ``x_i``,
``i = 1..n``::

    S_real  = (1 / 12n) Σ_i [ p(ŷ_i, x_i) + Σ_{k≠4} a_k(ŷ_i) + (1 − a_4(ŷ_i)) ]
    S_synth = 1 / mean_i RMSE(Ŷ_i, Y_i)      # RMSE per frame on (x − 128) / 128,
                                             # mean over frames, then over videos
    S_obj   = S_real × S_synth

a_4 is the noise score (higher = noisier), which is why it enters inverted — the
submission files carry it raw and the organisers' script inverts it.

CSV layouts (one file per condition, header row included):

* real: ``video_i, m_1, …, m_12`` with ``m_1 = p(ŷ_i, x_i)`` and ``m_{k+1} = a_k(ŷ_i)``;
* synthetic: ``video_i, rmse``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import video
from analysis._files import atomic_write

from .base import N_AUX, NOISE_AUX_INDEX, Scorer, ScorerError, StrPath
from .cache import ScoreCache, score_pairs

#: Columns of the real-data CSV after ``video_i``: p then a_1..a_11.
M_COLUMNS: tuple[str, ...] = tuple(f"m_{k}" for k in range(1, N_AUX + 2))
REAL_COLUMNS: tuple[str, ...] = ("video_i", *M_COLUMNS)
SYNTH_COLUMNS: tuple[str, ...] = ("video_i", "rmse")


def _real_matrix(p: Any, aux: Any) -> tuple[np.ndarray, np.ndarray]:
    p_arr = np.asarray(p, dtype=float).reshape(-1)
    aux_arr = np.asarray(aux, dtype=float).reshape(p_arr.size, -1) if p_arr.size else np.zeros((0, N_AUX))
    if aux_arr.shape[1] != N_AUX:
        raise ValueError(f"aux must have {N_AUX} columns, got {aux_arr.shape[1]}")
    if p_arr.size == 0:
        raise ValueError("S_real needs at least one video")
    if not (np.all((p_arr >= 0) & (p_arr <= 1)) and np.all((aux_arr >= 0) & (aux_arr <= 1))):
        raise ValueError("p and aux scores must lie in [0, 1]")
    return p_arr, aux_arr


def s_real_per_video(p: Any, aux: Any) -> np.ndarray:
    """Per-video term ``[p + Σ_{k≠4} a_k + (1 − a_4)] / 12`` (their mean is S_real).

    Parameters
    ----------
    p : array_like
        ``p(ŷ_i, x_i)`` per video, shape (n,).
    aux : array_like
        ``a_1..a_11`` of each ``ŷ_i``, shape (n, 11), a_4 raw (higher = noisier).

    Returns
    -------
    ndarray, shape (n,)
        Each in [0, 1].

    Raises
    ------
    ValueError
        When there is no video, ``aux`` has not 11 columns, or a value lies outside [0, 1].
    """
    p_arr, aux_arr = _real_matrix(p, aux)
    inverted = aux_arr.copy()
    inverted[:, NOISE_AUX_INDEX] = 1.0 - inverted[:, NOISE_AUX_INDEX]
    return (p_arr + inverted.sum(axis=1)) / (N_AUX + 1)


def s_real(p: Any, aux: Any) -> float:
    """``S_real = (1/12n) Σ_i [p_i + Σ_{k≠4} a_{ik} + (1 − a_{i4})]``.

    Parameters
    ----------
    p
        ``p(ŷ_i, x_i)`` per video, shape (n,).
    aux
        ``a_1..a_11`` of each ``ŷ_i``, shape (n, 11), a_4 raw (higher = noisier).

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        As :func:`s_real_per_video`.
    """
    return float(s_real_per_video(p, aux).mean())


def frame_rmse(output: np.ndarray, target: np.ndarray) -> float:
    """RMSE of one frame pair on the challenge scale ``(x − 128) / 128``.

    The offset cancels in the difference, so this is the 8-bit RMSE divided by 128.

    Parameters
    ----------
    output, target : ndarray
        8-bit frames of the same shape (e.g. ``(height, width, 3)`` RGB).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    if output.shape != target.shape:
        raise ValueError(f"frame shapes differ: {output.shape} vs {target.shape}")
    diff = (output.astype(np.float64) - target.astype(np.float64)) / 128.0
    return float(np.sqrt(np.mean(diff * diff)))


def video_rmse(output_path: StrPath, target_path: StrPath) -> float:
    """Mean over frames of :func:`frame_rmse`, decoding both files in lock step (RGB).

    Parameters
    ----------
    output_path : str or PathLike
        The method's output video ``Ŷ_i``.
    target_path : str or PathLike
        The ground-truth video ``Y_i``.

    Returns
    -------
    float
        Mean per-frame RMSE on the ``(x − 128) / 128`` scale.

    Raises
    ------
    ScorerError
        If a file cannot be decoded, or the two differ in frame count or size.
    """
    rmses: list[float] = []
    try:
        pairs = zip(video.iter_frames(output_path), video.iter_frames(target_path), strict=True)
        for (_, fo), (_, ft) in pairs:
            # FFmpeg's default RGB conversion, as the organisers' script reads frames.
            a = fo.to_ndarray(format="rgb24")
            b = ft.to_ndarray(format="rgb24")
            if a.shape != b.shape:
                raise ScorerError(
                    f"{output_path} is {a.shape[1]}x{a.shape[0]} but {target_path} is {b.shape[1]}x{b.shape[0]}"
                )
            rmses.append(frame_rmse(a, b))
    except video.VideoError as exc:
        raise ScorerError(f"cannot decode {output_path} / {target_path}: {exc}") from exc
    except ValueError as exc:  # zip(strict=True): one clip ran out first
        raise ScorerError(f"{output_path} and {target_path} have different frame counts") from exc
    if not rmses:
        raise ScorerError(f"{output_path}: no frames")
    return float(np.mean(rmses))


def s_synth(rmses: Iterable[float]) -> float:
    """``S_synth = 1 / mean_i RMSE_i`` over the synthetic videos (inf for a perfect match).

    Parameters
    ----------
    rmses : iterable of float
        :func:`video_rmse` of each synthetic video.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When ``rmses`` is empty.
    """
    arr = np.asarray(list(rmses), dtype=float)
    if arr.size == 0:
        raise ValueError("S_synth needs at least one video")
    mean = float(arr.mean())
    return float("inf") if mean == 0 else 1.0 / mean


def s_obj(s_real_value: float, s_synth_value: float) -> float:
    """``S_obj = S_real × S_synth``.

    Parameters
    ----------
    s_real_value : float
    s_synth_value : float

    Returns
    -------
    float
        NaN when either is NaN.
    """
    return float(s_real_value) * float(s_synth_value)


@dataclass(frozen=True)
class ChallengeScore:
    """S values of one condition, with the counts that produced them."""

    condition: str
    s_real: float
    s_synth: float
    s_obj: float
    n_real: int
    n_synth: int

    def to_frame(self) -> pd.DataFrame:
        """One-row frame of the fields.

        Returns
        -------
        DataFrame
            ``condition, s_real, s_synth, s_obj, n_real, n_synth``.
        """
        return pd.DataFrame([asdict(self)])


def challenge_score(condition: str, real: pd.DataFrame, synth: pd.DataFrame) -> ChallengeScore:
    """S_real, S_synth, S_obj of one condition from its two CSV-layout frames.

    Parameters
    ----------
    condition : str
    real : DataFrame
        ``video_i, m_1..m_12`` (:data:`REAL_COLUMNS`).
    synth : DataFrame
        ``video_i, rmse`` (:data:`SYNTH_COLUMNS`).

    Returns
    -------
    ChallengeScore

    Raises
    ------
    ValueError
        When a frame lacks a column or is empty, or a score lies outside [0, 1].
    """
    _check_columns(real, REAL_COLUMNS, "real")
    _check_columns(synth, SYNTH_COLUMNS, "synth")
    p = real["m_1"].to_numpy(dtype=float)
    aux = real[list(M_COLUMNS[1:])].to_numpy(dtype=float)
    sr = s_real(p, aux)
    ss = s_synth(synth["rmse"].to_numpy(dtype=float))
    return ChallengeScore(condition, sr, ss, s_obj(sr, ss), len(real), len(synth))


def challenge_scores(real: pd.DataFrame, synth: pd.DataFrame) -> pd.DataFrame:
    """Per-condition S values from frames in the CSV layouts plus a ``condition`` column.

    Parameters
    ----------
    real : DataFrame
        ``condition`` and :data:`REAL_COLUMNS`.
    synth : DataFrame
        ``condition`` and :data:`SYNTH_COLUMNS`.

    Returns
    -------
    DataFrame
        ``condition, s_real, s_synth, s_obj, n_real, n_synth``, one row per condition
        (sorted).

    Raises
    ------
    ValueError
        As :func:`challenge_score`, e.g. for a condition present in only one frame.
    """
    rows = []
    for cond in sorted(set(real["condition"]) | set(synth["condition"]), key=str):
        rows.append(
            asdict(challenge_score(str(cond), real[real["condition"] == cond], synth[synth["condition"] == cond]))
        )
    return pd.DataFrame(rows, columns=["condition", "s_real", "s_synth", "s_obj", "n_real", "n_synth"])


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks column(s) {missing}")


# --------------------------------------------------------------------------- producing rows


def real_rows(
    scorer: Scorer,
    videos: Iterable[tuple[str, StrPath, StrPath]],
    *,
    symmetric: bool = True,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> pd.DataFrame:
    """The real-data CSV rows of one condition: ``(video_i, output ŷ_i, input x_i)`` → m_1..m_12.

    ``m_1 = p(ŷ_i, x_i)``; with ``symmetric=True`` (the platform's rule) it is p_sym and
    the aux of ŷ_i is averaged over both slots; ``symmetric=False`` gives the single
    forward call of the organisers' script.

    Parameters
    ----------
    scorer : Scorer
    videos : iterable of (str, path, path)
        ``(video_i, output path, input path)`` per video.
    symmetric : bool
        Score both orders (p_sym) or only ``(output, input)``.
    cache : ScoreCache, optional
        Score cache.
    workers : int
        Parallel workers.
    progress : callable or bool, optional
        Progress callback (see :func:`analysis.objective.cache.text_progress`).

    Returns
    -------
    DataFrame
        ``video_i, m_1..m_12`` in the order of ``videos``.

    Raises
    ------
    ScorerError
        When a pair cannot be scored.
    """
    items = list(videos)
    scored = score_pairs(
        scorer,
        [(out, inp) for _, out, inp in items],
        symmetric=symmetric,
        cache=cache,
        workers=workers,
        progress=progress,
    )
    frame = pd.DataFrame({"video_i": [v for v, _, _ in items]})
    frame["m_1"] = scored["p"].to_numpy()
    for k in range(1, N_AUX + 1):
        frame[f"m_{k + 1}"] = scored[f"aux_a_{k}"].to_numpy()
    return frame


def synth_rows(videos: Iterable[tuple[str, StrPath, StrPath]]) -> pd.DataFrame:
    """The synthetic CSV rows: ``(video_i, output Ŷ_i, target Y_i)`` → ``video_i, rmse``.

    Parameters
    ----------
    videos : iterable of (str, path, path)
        ``(video_i, output path, target path)`` per video.

    Returns
    -------
    DataFrame
        ``video_i, rmse`` in the order of ``videos``.

    Raises
    ------
    ScorerError
        As :func:`video_rmse`.
    """
    items = list(videos)
    return pd.DataFrame({"video_i": [v for v, _, _ in items], "rmse": [video_rmse(o, t) for _, o, t in items]})


def write_real_csv(frame: pd.DataFrame, path: StrPath) -> Path:
    """Write ``video_i, m_1..m_12`` (the challenge's real-data submission layout).

    Parameters
    ----------
    frame : DataFrame
        Holding :data:`REAL_COLUMNS` (others are not written).
    path : str or PathLike

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        When a column is missing.
    """
    return _write_layout(frame, path, REAL_COLUMNS, "real")


def write_synth_csv(frame: pd.DataFrame, path: StrPath) -> Path:
    """Write ``video_i, rmse`` (the challenge's synthetic-data submission layout).

    Parameters
    ----------
    frame : DataFrame
        Holding :data:`SYNTH_COLUMNS` (others are not written).
    path : str or PathLike

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        When a column is missing.
    """
    return _write_layout(frame, path, SYNTH_COLUMNS, "synth")


def read_real_csv(path: StrPath) -> pd.DataFrame:
    """Read a ``video_i, m_1..m_12`` file, checking the columns.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    DataFrame
        ``video_i`` as strings.

    Raises
    ------
    ValueError
        When a column is missing.
    """
    return _read_layout(path, REAL_COLUMNS, "real")


def read_synth_csv(path: StrPath) -> pd.DataFrame:
    """Read a ``video_i, rmse`` file, checking the columns.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    DataFrame
        ``video_i`` as strings.

    Raises
    ------
    ValueError
        When a column is missing.
    """
    return _read_layout(path, SYNTH_COLUMNS, "synth")


def _write_layout(frame: pd.DataFrame, path: StrPath, columns: Sequence[str], what: str) -> Path:
    # One writer for both layouts; atomic, so a failed run never leaves a half-written submission.
    _check_columns(frame, columns, what)
    table = frame.loc[:, list(columns)]
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))


def _read_layout(path: StrPath, columns: Sequence[str], what: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"video_i": str})
    _check_columns(frame, columns, f"{what} CSV {path}")
    return frame


def challenge_tables(
    scorer: Scorer | None,
    real: pd.DataFrame | None,
    synth: pd.DataFrame | None,
    *,
    symmetric: bool = True,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """Per-condition CSV frames (``video_i, m_1..m_12`` and ``video_i, rmse``) and the S table.

    Parameters
    ----------
    scorer : Scorer or None
        Scores the real videos (output against input); needed when ``real`` has rows.
    real : DataFrame or None
        Rows ``condition, video, output_path, input_path`` (see
        :func:`read_challenge_input`).
    synth : DataFrame or None
        Rows ``condition, video, output_path, target_path``.
    symmetric : bool
        Score real videos in both orders (p_sym) rather than one.
    cache : ScoreCache, optional
        Score cache.
    workers : int
        Processes scoring in parallel.
    progress : callable, optional
        Progress callback (see :func:`analysis.objective.cache.text_progress`).

    Returns
    -------
    real_by_condition : dict of str to DataFrame
        ``video_i, m_1..m_12`` per condition, sorted by condition.
    synth_by_condition : dict of str to DataFrame
        ``video_i, rmse`` per condition.
    s_values : DataFrame
        ``condition, s_real, s_synth, s_obj, n_real, n_synth`` (NaN where a set is absent).

    Raises
    ------
    ScorerError
        When a real video could not be scored.
    """
    real_frames: dict[str, pd.DataFrame] = {}
    synth_frames: dict[str, pd.DataFrame] = {}
    if real is not None and len(real):
        assert scorer is not None
        rows = real_rows(scorer, list(zip(real["video"], real["output_path"], real["input_path"],
                                                    strict=True)),
                                   symmetric=symmetric, cache=cache, workers=workers, progress=progress)
        errors = real.assign(m_1=rows["m_1"].to_numpy())
        if errors["m_1"].isna().any():
            bad = errors.loc[errors["m_1"].isna(), ["condition", "video"]].head(3).values.tolist()
            raise ScorerError(f"could not score real video(s) {bad}")
        for cond, idx in real.groupby("condition", sort=True).groups.items():
            real_frames[str(cond)] = rows.loc[idx].reset_index(drop=True)
    if synth is not None and len(synth):
        for cond, part in synth.groupby("condition", sort=True):
            synth_frames[str(cond)] = synth_rows(
                zip(part["video"], part["output_path"], part["target_path"], strict=True))
    out = []
    for cond in sorted(set(real_frames) | set(synth_frames)):
        r, s = real_frames.get(cond), synth_frames.get(cond)
        sr = s_real(r["m_1"], r[list(M_COLUMNS[1:])]) if r is not None else math.nan
        ss = s_synth(s["rmse"]) if s is not None else math.nan
        out.append({"condition": cond, "s_real": sr, "s_synth": ss, "s_obj": s_obj(sr, ss),
                    "n_real": 0 if r is None else len(r), "n_synth": 0 if s is None else len(s)})
    cols = ["condition", "s_real", "s_synth", "s_obj", "n_real", "n_synth"]
    return real_frames, synth_frames, pd.DataFrame(out, columns=cols)
