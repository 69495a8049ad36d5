"""The demo's encoder: RGB frames into H.264/MP4 or VP9/WebM clips that browsers seek fast.

Colour handling: frames are RGB ``uint8``; they are converted to Y'CbCr with the BT.709
matrix in limited ("TV") range and the stream is tagged BT.709, which is what browsers
assume for HD video. :func:`analysis.video.read_rgb` converts back with the same matrix,
so encode → decode round-trips are colour-faithful. A keyframe comes every second
(:func:`keyframe_interval`). Files are written to a temporary sibling and renamed, so a
clip path never holds a half-written file.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from analysis import video

__all__ = ["CODEC_NAMES", "CRF_RANGE", "check_frame", "exact_rate", "keyframe_interval", "write_clip"]

#: Clean and worst CRF per encoder (lower is better).
CRF_RANGE = {"libx264": (18.0, 51.0), "libvpx-vp9": (24.0, 63.0)}

_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
#: FFmpeg's name of the stream each encoder writes.
CODEC_NAMES = {"libx264": "h264", "libvpx-vp9": "vp9"}
_WEBM_CODECS = {"libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"}


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` itself when it is an ``(H, W, 3)`` RGB ``uint8`` array.

    Raises
    ------
    ValueError
        Any other shape or dtype.
    """
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", None)
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got shape {shape} dtype {dtype}")
    return frame


def exact_rate(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction.

    Parameters
    ----------
    fps : float or Fraction
        ``29.97`` / ``59.94`` / ``23.976`` mean the NTSC ``n * 1000/1001``.

    Returns
    -------
    Fraction

    Raises
    ------
    ValueError
        When the rate is not positive.
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        f = float(fps)
        ntsc = round(f * 1.001)
        if f != round(f) and abs(ntsc * 1000 / 1001 - f) < 0.005:
            rate = Fraction(ntsc * 1000, 1001)
        else:
            rate = Fraction(f).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return rate


def write_clip(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float = 25,
    codec: str = "libx264",
    crf: float = 18,
    pix_fmt: str = "yuv420p",
    *,
    preset: str = "fast",
    threads: int = 0,
) -> video.VideoInfo:
    """Encode RGB frames into a video file.

    The file is written to a temporary name in the same directory and renamed
    into place when complete, so ``path`` never holds a partial clip.

    Parameters
    ----------
    path : path-like
        Output file; the container follows the suffix (``.mp4``, ``.mov``,
        ``.mkv``, ``.webm``).
    frames : iterable of numpy.ndarray
        ``(H, W, 3)`` RGB ``uint8`` frames, all the same size (even width and
        height for 4:2:0).
    fps : float
        Frame rate (``29.97`` becomes ``30000/1001``).
    codec : str
        ``"libx264"`` (H.264) or ``"libvpx-vp9"`` (VP9, needs ``.webm`` /
        ``.mkv``).
    crf : float
        Constant rate factor (x264: 0–51, VP9: 0–63; lower is better).
    pix_fmt : str
        Encoded pixel format; ``yuv420p`` plays everywhere.
    preset : str
        x264 preset (speed/efficiency trade-off); ignored for VP9.
    threads : int
        Encoder threads; 0 lets the encoder decide.

    Returns
    -------
    analysis.video.VideoInfo
        :func:`analysis.video.probe` of the written file (frames counted).

    Raises
    ------
    ValueError
        No frames, inconsistent or odd frame sizes, or a codec the container
        cannot hold.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported clip suffix {path.suffix!r}; use one of {sorted(_FORMATS)}")
    if fmt == "webm" and codec not in _WEBM_CODECS:
        raise ValueError(f"codec {codec!r} cannot go into WebM; use libvpx-vp9")
    if codec not in av.codecs_available:
        raise ValueError(f"codec {codec!r} is not available in this FFmpeg build")
    rate = exact_rate(fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique hidden sibling (same filesystem, so the rename is atomic), created by FFmpeg
    # with the usual umask-derived permissions (mkstemp would make it owner-only).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        _encode(tmp, fmt, frames, rate, codec, crf, pix_fmt, preset, threads)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return video.probe(path, count_frames=True)


def _encode(
    tmp: Path,
    fmt: str,
    frames: Iterable[np.ndarray],
    rate: Fraction,
    codec: str,
    crf: float,
    pix_fmt: str,
    preset: str,
    threads: int,
) -> None:
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to encode")
    first = check_frame(first)
    h, w = first.shape[:2]
    if pix_fmt.startswith(("yuv420", "nv12")) and (h % 2 or w % 2):
        raise ValueError(f"{pix_fmt} needs an even frame size, got {w}x{h}")
    container_options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with av.open(str(tmp), "w", format=fmt, container_options=container_options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        cc = stream.codec_context
        cc.color_range = 1  # MPEG (limited)
        cc.colorspace = 1  # BT.709
        cc.color_primaries = 1
        cc.color_trc = 1
        cc.thread_count = int(threads)
        stream.options = _encoder_options(codec, crf, preset, keyframe_interval(rate))
        for n, arr in enumerate(_chain_first(first, it)):
            arr = check_frame(arr)
            if arr.shape[:2] != (h, w):
                raise ValueError(f"frame {n} has size {arr.shape[1]}x{arr.shape[0]}, expected {w}x{h}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace="itu709", dst_color_range=1, interpolation="BICUBIC")
            frame.pts = n
            frame.time_base = 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def keyframe_interval(fps: float | Fraction) -> int:
    """Frames between keyframes: as many as fit in one second (at least 1).

    A browser seeks by decoding from the keyframe before the target, so a keyframe
    at least every second keeps every seek (replay, scrubbing, syncing two players)
    fast; the encoders' defaults (x264: 250 frames, VP9: 128) put one every 5–10 s.

    Parameters
    ----------
    fps : float or Fraction
        Frame rate (``29.97`` means ``30000/1001``).

    Returns
    -------
    int
        ``max(1, floor(fps))``.
    """
    return max(1, math.floor(exact_rate(fps)))


def _encoder_options(codec: str, crf: float, preset: str, gop: int) -> dict[str, str]:
    """Encoder options for quality ``crf`` and a keyframe exactly every ``gop`` frames.

    Minimum = maximum interval, and no x264 scene-cut keyframes, give every condition
    of a content the same keyframe times, so the two players of a pair seek alike.
    """
    if codec == "libx264":
        return {"crf": f"{float(crf):g}", "preset": preset,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
    if codec == "libvpx-vp9":
        return {"crf": str(round(float(crf))), "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1",
                "g": str(gop), "keyint_min": str(gop)}
    return {"crf": f"{float(crf):g}", "g": str(gop), "keyint_min": str(gop)}


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
