"""Video I/O of the web study.

:func:`clean_copy` remuxes a stimulus into the file raters are served: the same
coded pictures (packets are copied, nothing is re-encoded) with nothing else that
could tell one condition from another — no container or stream metadata, no
muxer tag (``Lavf…``), no encoder settings in the bitstream (x264 writes its whole
command line, ``crf=…`` included, into an SEI message of the first frame), no
audio (the players are muted) and a fixed modification time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import av
import av.bitstream

__all__ = ["FIXED_MTIME", "clean_copy", "copy_suffix"]

#: Modification time of every clean copy (2000-01-01 UTC): Last-Modified says nothing.
FIXED_MTIME = 946_684_800

# Container of the copy, by the original's suffix; anything else goes into Matroska.
_FORMATS = {".mp4": ("mp4", ".mp4"), ".m4v": ("mp4", ".mp4"), ".mov": ("mov", ".mov"),
            ".webm": ("webm", ".webm"), ".mkv": ("matroska", ".mkv")}
_FALLBACK = ("matroska", ".mkv")

# NAL units to drop per codec: all SEI (H.264 type 6; HEVC prefix 39 and suffix 40). Encoders
# put their settings there (x264, x265); colour information lives in the parameter sets.
_STRIP_SEI = {"h264": "filter_units=remove_types=6", "hevc": "filter_units=remove_types=39|40"}

# Muxer options: ``bitexact`` leaves out the encoder tag and creation times; ``faststart`` puts
# the index first so a browser can start playing before the whole file arrived.
_MUXER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}


def copy_suffix(original: str | os.PathLike[str]) -> str:
    """The file suffix :func:`clean_copy` gives the copy of ``original`` (``.mp4``, ``.webm``, …)."""
    return _FORMATS.get(Path(original).suffix.lower(), _FALLBACK)[1]


def clean_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
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
    ValueError
        ``src`` cannot be read, has no video stream, or its packets cannot be remuxed;
        the message says why, in the manifest's words.
    """
    dst = Path(dst)
    fmt = _FORMATS.get(Path(src).suffix.lower(), _FALLBACK)[0]
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        _remux(Path(src), tmp, fmt)
        os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
        os.replace(tmp, dst)
    except av.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"cannot be remuxed ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst.stat().st_size


def _remux(src: Path, tmp: Path, fmt: str) -> None:
    with av.open(str(src)) as inp:
        if not inp.streams.video:
            raise ValueError("has no video stream")
        ist = inp.streams.video[0]
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
                raise ValueError("has no video packets")
