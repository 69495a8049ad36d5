"""The demo clip set: one clip per content and condition, generated in parallel, reused when valid.

:func:`make_clip` writes one content under one condition; :func:`generate_demo` writes
the whole set ``<out>/<content>/<condition>.<ext>``, keeping valid clips that exist.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np

from analysis import video
from study_app.demo.conditions import DEMO_CONDITIONS, ConditionSpec, normalize_condition
from study_app.demo.degradations import Degradation
from study_app.demo.encoder import CODEC_NAMES, CRF_RANGE, exact_rate, keyframe_interval, write_clip
from study_app.demo.sources import content_key, content_seed, source_frames

__all__ = ["generate_demo", "make_clip"]


def _clip_frames(
    content: str | int,
    steps: Sequence[tuple[Degradation, float]],
    width: int,
    height: int,
    n_frames: int,
    fps: float,
    seed: int | None,
) -> Iterator[np.ndarray]:
    name, _ = content_key(content)
    base_seed = content_seed(name) if seed is None else int(seed)
    frames: Iterable[np.ndarray] = source_frames(content, width, height, n_frames, fps, seed=base_seed)
    for k, (deg, strength) in enumerate(steps):
        if deg.frame_fn is not None and strength > 0:
            step_seed = (base_seed * 1_000_003 + zlib.crc32(deg.name.encode()) + k) & 0x7FFFFFFF
            frames = deg.apply_all(frames, strength, seed=step_seed, fps=fps)
    return iter(frames)


def make_clip(
    path: str | os.PathLike[str],
    content: str | int,
    condition_spec: ConditionSpec = None,
    width: int = 1280,
    height: int = 720,
    seconds: float = 5,
    fps: float = 25,
    *,
    codec: str = "libx264",
    crf: float | None = None,
    seed: int | None = None,
    preset: str = "fast",
    threads: int = 0,
) -> video.VideoInfo:
    """Generate one clip: a content under a condition, encoded to ``path``.

    Parameters
    ----------
    path : path-like
        Output clip (``.mp4`` for H.264, ``.webm`` for VP9).
    content : str or int
        See :func:`study_app.demo.sources.source_frames`.
    condition_spec : condition spec
        See :func:`study_app.demo.conditions.normalize_condition`; e.g. ``None``, ``"source"``,
        ``"noisy"`` or ``{"degradation": "noise", "strength": 0.5}``.
    width, height : int
        Frame size (even).
    seconds : float
        Duration; the clip has ``round(seconds * fps)`` frames.
    fps : float
        Frame rate.
    codec : str
        ``"libx264"`` or ``"libvpx-vp9"``.
    crf : float, optional
        Quality of the clean encode; defaults to 18 (x264) / 24 (VP9). A
        ``compression`` step overrides it.
    seed : int, optional
        Texture and noise seed; defaults to a hash of the content name.
    preset : str
        x264 preset.
    threads : int
        Encoder threads (0 = automatic).

    Returns
    -------
    analysis.video.VideoInfo
        Of the written file.
    """
    steps = normalize_condition(condition_spec)
    n_frames = round(float(seconds) * float(fps))
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame (seconds={seconds}, fps={fps})")
    clean = CRF_RANGE.get(codec, CRF_RANGE["libx264"])[0]
    quality = clean if crf is None else float(crf)
    for deg, strength in steps:
        if deg.encoder_fn is not None:
            quality = max(quality, deg.encoder_fn(strength, codec))
    frames = _clip_frames(content, steps, int(width), int(height), n_frames, float(fps), seed)
    return write_clip(path, frames, fps=fps, codec=codec, crf=quality, preset=preset, threads=threads)


def _is_valid(path: Path, width: int, height: int, fps: float, n_frames: int, codec: str) -> bool:
    """True when ``path`` is a complete clip with the expected properties."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        info = video.probe(path, count_frames=True)
    except video.VideoError:
        return False
    return (
        info.width == width
        and info.height == height
        and info.n_frames == n_frames
        and abs(info.fps - fps) < 1e-3
        and info.codec == CODEC_NAMES.get(codec, codec)
        # Clips from before keyframes were set every second have one keyframe in 5 s: redo them.
        and video.keyframes_every(path, fps, keyframe_interval(fps))
    )


def _pool_context() -> BaseContext:
    """``fork`` when it is safe (Linux, a single thread: ~0.1 s to start), else ``spawn``.

    Forking a multi-threaded process (e.g. a threaded web server) can deadlock
    on locks held by the other threads; ``spawn`` re-imports instead (~1–3 s).
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return get_context("fork")
    return get_context("spawn")


def _make_clip_task(args: tuple[Any, ...]) -> tuple[str, float]:
    path, content, spec, width, height, seconds, fps, codec, threads = args
    t0 = time.perf_counter()
    make_clip(path, content, spec, width, height, seconds, fps, codec=codec, threads=threads)
    return str(path), time.perf_counter() - t0


def generate_demo(
    out_dir: str | os.PathLike[str],
    width: int = 1280,
    height: int = 720,
    seconds: float = 5,
    fps: float = 25,
    contents: Sequence[str] = ("c1", "c2", "c3", "c4"),
    workers: int = 2,
    *,
    conditions: Mapping[str, ConditionSpec] | None = None,
    codec: str = "libx264",
    force: bool = False,
    verbose: bool = False,
) -> list[Path]:
    """Write the demo clip set ``out_dir/<content>/<condition>.<ext>``.

    Clips that already exist and are valid (readable to the end, right size,
    rate, frame count and codec, a keyframe at least every second) are kept;
    missing, broken or outdated ones are (re)generated. Each clip is written under a temporary name and renamed, so
    an interrupted run never leaves a half-written clip behind.

    Parameters
    ----------
    out_dir : path-like
        Root directory (created if needed).
    width, height : int
        Frame size.
    seconds : float
        Clip duration.
    fps : float
        Frame rate.
    contents : sequence of str
        Content names (see :func:`study_app.demo.sources.source_frames`).
    workers : int
        Parallel encoder processes (1 = in this process).
    conditions : mapping, optional
        Condition name → spec; defaults to :data:`study_app.demo.conditions.DEMO_CONDITIONS` (all six).
    codec : str
        ``"libx264"`` (``.mp4``) or ``"libvpx-vp9"`` (``.webm``).
    force : bool
        Regenerate even valid clips.
    verbose : bool
        Print one progress line per clip to stdout.

    Returns
    -------
    list of pathlib.Path
        Every clip path, content-major in the order of ``contents`` and
        ``conditions`` (whether generated or reused).
    """
    out = Path(out_dir)
    conds = dict(DEMO_CONDITIONS if conditions is None else conditions)
    for spec in conds.values():
        normalize_condition(spec)  # fail early on a bad spec
    ext = ".webm" if codec == "libvpx-vp9" else ".mp4"
    n_frames = round(float(seconds) * float(fps))
    fps_exact = float(exact_rate(fps))
    workers = max(1, int(workers))
    threads = 0 if workers == 1 else max(1, (os.cpu_count() or 1) // workers)

    paths: list[Path] = []
    todo: list[tuple[Any, ...]] = []
    for content in contents:
        for cond, spec in conds.items():
            path = out / str(content) / f"{cond}{ext}"
            paths.append(path)
            if not force and _is_valid(path, int(width), int(height), fps_exact, n_frames, codec):
                continue  # counted in the summary line
            todo.append((path, content, spec, int(width), int(height), seconds, fps, codec, threads))

    def report(done: int, name: str, dt: float) -> None:
        if verbose:
            print(f"[{done}/{len(todo)}] wrote {name} ({dt:.1f} s)", flush=True)

    t0 = time.perf_counter()
    if workers == 1 or len(todo) <= 1:
        for k, task in enumerate(todo, 1):
            report(k, *_make_clip_task(task))
    elif todo:
        # Frame-filtered clips cost more; start them first for a better balance.
        todo.sort(key=lambda task: -sum(d.frame_fn is not None for d, _ in normalize_condition(task[2])))
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=_pool_context()) as pool:
            futures = [pool.submit(_make_clip_task, task) for task in todo]
            for k, fut in enumerate(as_completed(futures), 1):
                report(k, *fut.result())
    if verbose:
        kept = len(paths) - len(todo)
        print(
            f"{len(todo)} clip(s) written, {kept} kept, in {time.perf_counter() - t0:.1f} s",
            file=sys.stdout,
            flush=True,
        )
    return paths
