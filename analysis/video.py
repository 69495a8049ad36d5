"""Video I/O: probe, decode, sampled frames, keyframes and clean copies.

The one place that opens video files. The manifest check probes stimuli with it, the
demo's clip generator reads back what it wrote, and the objective scorers decode
sampled frames through it.

* :func:`probe` — size, frame rate, duration, frame count, codec and file size
  (:class:`VideoInfo`).
* :func:`count_frames`, :func:`sample_indices`, :func:`iter_decoded`,
  :func:`iter_frames` — frame counts and sampled decoding of raw ``av.VideoFrame``\\ s.
* :func:`read_rgb`, :func:`to_rgb`, :func:`to_bgr` — frames as NumPy arrays.
* :func:`keyframes_every` — whether a clip can be seeked quickly.
* :func:`clean_copy` — the metadata-free remux raters are served: the same coded
  pictures (packets are copied, nothing is re-encoded) with nothing else that could
  tell one condition from another — no container or stream metadata, no muxer tag
  (``Lavf…``), no encoder settings in the bitstream (x264 writes its whole command
  line, ``crf=…`` included, into an SEI message of the first frame), no audio (the
  players are muted) and a fixed modification time.

PyAV is imported inside the functions, so ``import analysis`` does not load FFmpeg.
Every problem with a file is a :class:`VideoError` naming the file and the problem.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import av

__all__ = [
    "FIXED_MTIME",
    "VideoError",
    "VideoInfo",
    "clean_copy",
    "copy_suffix",
    "count_frames",
    "iter_decoded",
    "iter_frames",
    "keyframes_every",
    "probe",
    "read_rgb",
    "sample_indices",
    "to_bgr",
    "to_rgb",
]

StrPath = str | os.PathLike[str]


class VideoError(ValueError):
    """A video file cannot be used; ``str()`` is ``"<path>: <problem>"``.

    Parameters
    ----------
    path : str or PathLike
        The file (or URL).
    problem : str
        What is wrong, worded to follow the file's name (``"has no video stream"``,
        ``"cannot be decoded as video (…)"``); callers that name the file themselves
        use :attr:`problem` alone.
    """

    def __init__(self, path: StrPath, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Attributes
    ----------
    width, height : int
        Frame size in pixels.
    fps : float
        Frame rate (0.0 when the file does not say).
    duration_s : float
        Duration in seconds (0.0 when the file does not say).
    n_frames : int or None
        Number of frames: counted, from the header, else estimated from duration and
        rate; None when none of these is known.
    codec : str
        Codec name as FFmpeg reports it (``"h264"``, ``"vp9"``).
    size_bytes : int or None
        File size; None for a URL.
    """

    width: int
    height: int
    fps: float
    duration_s: float
    n_frames: int | None
    codec: str
    size_bytes: int | None


def _is_remote(path: StrPath) -> bool:
    return "://" in os.fspath(path)


@contextmanager
def _problems(path: StrPath) -> Iterator[None]:
    """Turn PyAV and OS errors inside the block into a :class:`VideoError`."""
    import av
    import av.error

    try:
        yield
    except (av.error.InvalidDataError, av.error.DecoderNotFoundError, av.error.DemuxerNotFoundError) as exc:
        raise VideoError(path, f"cannot be decoded as video ({exc.strerror or exc})") from exc
    except (av.FFmpegError, OSError) as exc:
        # Not the content's fault: the file or URL could not be opened at all.
        verb = "fetched" if _is_remote(path) else "read"
        raise VideoError(path, f"cannot be {verb} ({exc.strerror or exc})") from exc


def _video_stream(container: Any, path: StrPath) -> Any:
    if not container.streams.video:
        raise VideoError(path, "has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # e.g. a cut-off MP4 whose index lost the codec parameters
        raise VideoError(path, "cannot be decoded as video (no codec parameters)")
    return stream


def _count_packets(container: Any, stream: Any) -> int:
    # Demuxing reads the file but decodes nothing; the final flush packet is empty.
    return sum(1 for packet in container.demux(stream) if packet.size)


def probe(
    path: StrPath, *, count_frames: bool = False, decode_first: bool = False, timeout_s: float | None = None
) -> VideoInfo:
    """Read a video's size, frame rate, duration, frame count and codec.

    Parameters
    ----------
    path : str or PathLike
        A local file or an ``http(s)://`` URL.
    count_frames : bool
        Count the frames by demuxing every packet (reads the file to its end, decodes
        nothing) and check the count against the header's.
    decode_first : bool
        Decode the first frame (proves the stream decodes; its size is reported).
    timeout_s : float, optional
        Give up on a URL that does not answer within this many seconds.

    Returns
    -------
    VideoInfo
        Of the first video stream.

    Raises
    ------
    VideoError
        The file cannot be read or fetched, is not a video, has no video stream, does
        not decode, or (``count_frames``) holds fewer frames than its header says.
    """
    import av

    options = {"timeout": str(round(timeout_s * 1_000_000))} if timeout_s else {}
    with _problems(path), av.open(os.fspath(path), options=options) as container:
        stream = _video_stream(container, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        if decode_first:
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(path, "has no decodable video frame")
            width, height = first.width, first.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        header = int(stream.frames or 0)
        counted = None
        if count_frames:
            counted = _count_packets(container, stream) if not decode_first else _count_file(path, options)
            if header > 0 and counted != header:
                raise VideoError(path, f"header says {header} frames, {counted} readable")
        duration = _duration(container, stream, counted, fps)
        n_frames = counted if counted is not None else header or (round(duration * fps) if duration and fps else None)
        return VideoInfo(width=int(width), height=int(height), fps=fps, duration_s=duration, n_frames=n_frames,
                         codec=str(stream.codec_context.name),
                         size_bytes=os.path.getsize(path) if os.path.isfile(path) else None)


def _count_file(path: StrPath, options: dict[str, str]) -> int:
    """Packets of the first video stream, counted in a fresh pass (the first one decoded a frame)."""
    import av

    with _problems(path), av.open(os.fspath(path), options=options) as container:
        return _count_packets(container, _video_stream(container, path))


def _duration(container: Any, stream: Any, counted: int | None, fps: float) -> float:
    """Stream duration, else counted frames over the rate, else the container's duration."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if counted and fps:
        return counted / fps
    if container.duration:
        return container.duration / 1_000_000  # container duration is in microseconds
    return 0.0


def count_frames(path: StrPath) -> int:
    """Number of video frames: container metadata, else one demux pass counting packets.

    The packet pass reads the file but decodes nothing, so it costs a small fraction of
    a decode.

    Parameters
    ----------
    path : str or PathLike
        The video file (its first video stream is counted).

    Returns
    -------
    int

    Raises
    ------
    VideoError
        If the file cannot be read or has no video stream.
    """
    import av

    with _problems(path), av.open(os.fspath(path)) as container:
        stream = _video_stream(container, path)
        if stream.frames:
            return int(stream.frames)
        return _count_packets(container, stream)


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame indices in ``[0, n_frames)``, first and last included.

    Parameters
    ----------
    n_frames : int
        Frames in the clip.
    k : int
        Frames wanted.

    Returns
    -------
    ndarray of int64
        Sorted, distinct indices: all frames when ``k >= n_frames``, none when either
        argument is not positive.
    """
    if n_frames <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n_frames:
        return np.arange(n_frames, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_frames - 1, k)).astype(np.int64))


def _decode(path: StrPath, threads: bool) -> Iterator[av.VideoFrame]:
    """Every frame of the first video stream, in presentation order, errors as :class:`VideoError`."""
    import av

    with _problems(path), av.open(os.fspath(path)) as container:
        stream = _video_stream(container, path)
        if threads:
            # FFmpeg's threads run ahead while Python works on the previous frame.
            stream.thread_type = "AUTO"
        yield from container.decode(stream)


def iter_decoded(
    path: StrPath, *, frames: int | None = 32, every: int | None = None, threads: bool = True
) -> Iterator[tuple[int, av.VideoFrame, bool]]:
    """Decode a video front to back, yielding ``(index, frame, sampled)`` for every frame.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    frames : int, optional
        Sample this many evenly spaced frames (needs the frame count: metadata, else a
        packet-counting pass). Ignored when ``every`` is given; None means 32.
    every : int, optional
        Sample every n-th frame instead (no frame count needed).
    threads : bool
        Let FFmpeg decode with its own threads.

    Yields
    ------
    index : int
        0-based frame number.
    frame : av.VideoFrame
        The decoded frame, not converted.
    sampled : bool
        Whether the frame is one of the sampled ones.

    Raises
    ------
    ValueError
        When ``every < 1``.
    VideoError
        If the file cannot be decoded or has no video stream.

    Notes
    -----
    Only the caller decides whether to convert a frame; a frame not kept is released as
    soon as the generator advances, which is what keeps memory at a few frames.
    """
    if every is not None and every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    wanted: set[int] | None = None
    if every is None:
        wanted = set(sample_indices(count_frames(path), int(frames or 32)).tolist())
    for index, frame in enumerate(_decode(path, threads)):
        yield index, frame, (index % every == 0) if wanted is None else (index in wanted)


def iter_frames(
    path: StrPath, *, indices: Collection[int] | None = None, threads: bool = True
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode the frames numbered ``indices`` (all when None), yielding ``(index, frame)``.

    Decoding stops after the last wanted frame.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    indices : collection of int, optional
        0-based frame numbers, e.g. :func:`sample_indices` of :func:`count_frames`.
    threads : bool
        As in :func:`iter_decoded`.

    Yields
    ------
    tuple of (int, av.VideoFrame)
        The 0-based frame number and the decoded frame, not converted.

    Raises
    ------
    VideoError
        If the file cannot be decoded or has no video stream.
    """
    wanted = None if indices is None else {int(i) for i in indices}
    if wanted is not None and not wanted:
        return
    last = None if wanted is None else max(wanted)
    for index, frame in enumerate(_decode(path, threads)):
        if wanted is None or index in wanted:
            yield index, frame
        if index == last:
            return


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB ``uint8`` ``(H, W, 3)`` array of a frame, converted with the frame's own colour matrix.

    Frames that say nothing about their matrix or range are taken as BT.709 in limited
    range (what browsers assume for HD video), so the demo's encode → decode round trip is
    colour-faithful.
    """
    space = frame.colorspace if frame.colorspace in (1, 5, 6, 9) else 1
    rng = frame.color_range if frame.color_range in (1, 2) else 1
    return frame.to_ndarray(
        format="rgb24", src_colorspace=space, src_color_range=rng, dst_colorspace=space, interpolation="BICUBIC"
    )


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """BGR ``uint8`` ``(H, W, 3)`` array of a frame with FFmpeg's default conversion (as OpenCV reads it)."""
    return frame.to_ndarray(format="bgr24")


def read_rgb(path: StrPath) -> Iterator[np.ndarray]:
    """Decode a clip to RGB ``uint8`` frames (:func:`to_rgb`, BT.709 aware).

    Parameters
    ----------
    path : str or PathLike
        The video file.

    Yields
    ------
    numpy.ndarray
        ``(H, W, 3)`` RGB ``uint8`` frames in presentation order.

    Raises
    ------
    VideoError
        If the file cannot be decoded or has no video stream.
    """
    for frame in _decode(path, threads=True):
        yield to_rgb(frame)


def keyframes_every(path: StrPath, fps: float, interval: int) -> bool:
    """True when the clip starts on a keyframe and keyframes are at most ``interval`` frames apart.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    fps : float
        Its frame rate (packet times are converted to frame numbers with it).
    interval : int
        Largest allowed distance in frames; the end of the clip counts as a keyframe.

    Returns
    -------
    bool
        False also when the file cannot be read.
    """
    import av

    try:
        with av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            packets = sorted((p.pts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None)
            time_base = stream.time_base
    except (av.FFmpegError, OSError, IndexError):
        return False
    if not packets or not packets[0][1] or time_base is None:
        return False

    def frame(pts: int) -> int:
        return round((pts - packets[0][0]) * time_base * fps)

    # The frames after the last keyframe must be close to it too.
    marks = [frame(pts) for pts, key in packets if key] + [frame(packets[-1][0]) + 1]
    return all(b - a <= interval for a, b in pairwise(marks))


# ------------------------------------------------------------------------------ clean copies

#: Modification time of every clean copy (2000-01-01 UTC): Last-Modified says nothing.
FIXED_MTIME = 946_684_800

# Container of the copy, by the original's suffix; anything else goes into Matroska.
_COPY_FORMATS = {".mp4": ("mp4", ".mp4"), ".m4v": ("mp4", ".mp4"), ".mov": ("mov", ".mov"),
                 ".webm": ("webm", ".webm"), ".mkv": ("matroska", ".mkv")}
_COPY_FALLBACK = ("matroska", ".mkv")

# NAL units to drop per codec: all SEI (H.264 type 6; HEVC prefix 39 and suffix 40). Encoders
# put their settings there (x264, x265); colour information lives in the parameter sets.
_STRIP_SEI = {"h264": "filter_units=remove_types=6", "hevc": "filter_units=remove_types=39|40"}

# Muxer options: ``bitexact`` leaves out the encoder tag and creation times; ``faststart`` puts
# the index first so a browser can start playing before the whole file arrived.
_MUXER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}


def copy_suffix(original: StrPath) -> str:
    """The file suffix :func:`clean_copy` gives the copy of ``original`` (``.mp4``, ``.webm``, …)."""
    return _COPY_FORMATS.get(Path(original).suffix.lower(), _COPY_FALLBACK)[1]


def clean_copy(src: StrPath, dst: StrPath) -> int:
    """Remux the first video stream of ``src`` into a metadata-free ``dst``.

    Packets are copied (bit-identical pictures, frame for frame); only SEI
    messages are filtered out of H.264/HEVC. ``dst`` is written under a hidden
    temporary name in its folder and renamed into place, so it never holds a
    half-written file; its modification time is set to :data:`FIXED_MTIME`.

    Parameters
    ----------
    src : path-like
        The original clip.
    dst : path-like
        Where the copy goes; its suffix should be :func:`copy_suffix` of ``src``.

    Returns
    -------
    int
        Size of the copy in bytes.

    Raises
    ------
    VideoError
        ``src`` cannot be read, has no video stream, or its packets cannot be remuxed;
        :attr:`VideoError.problem` says why, in the manifest's words.
    """
    import av

    dst = Path(dst)
    fmt = _COPY_FORMATS.get(Path(src).suffix.lower(), _COPY_FALLBACK)[0]
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        _remux(Path(src), tmp, fmt)
        os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
        os.replace(tmp, dst)
    except av.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise VideoError(src, f"cannot be remuxed ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst.stat().st_size


def _remux(src: Path, tmp: Path, fmt: str) -> None:
    import av
    import av.bitstream

    with av.open(str(src)) as inp:
        ist = _video_stream(inp, src)
        options = {"fflags": "+bitexact", **_MUXER_OPTIONS.get(fmt, {})}
        with av.open(str(tmp), "w", format=fmt, options=options) as out:
            ost = out.add_stream_from_template(ist)
            ost.metadata.clear()
            strip = _STRIP_SEI.get(ist.codec_context.name)
            bsf = av.bitstream.BitStreamFilterContext(strip, ist, ost) if strip else None
            n = 0
            for packet in inp.demux(ist):
                # The demuxer ends with an empty packet: it flushes the filter.
                flushing = packet.dts is None and packet.size == 0
                if bsf is None and flushing:
                    continue
                for p in bsf.filter(None if flushing else packet) if bsf else [packet]:
                    p.stream = ost
                    out.mux(p)
                    n += 1
            if n == 0:
                raise VideoError(src, "has no video packets")
