"""analysis.video.clean_copy: the same pictures, nothing else that tells conditions apart."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from analysis import video
from study_app.demo.clipset import make_clip

SMALL = dict(width=320, height=180, seconds=1, fps=25)


def decoded(path: Path) -> list[tuple[int | None, np.ndarray]]:
    """(pts, planes in the stream's own pixel format) of every frame: stricter than RGB."""
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray()) for f in c.decode(c.streams.video[0])]


def same_frames(a: Path, b: Path) -> bool:
    fa, fb = decoded(a), decoded(b)
    if not len(fa) == len(fb) > 0:
        return False
    return all(pa == pb and np.array_equal(x, y) for (pa, x), (pb, y) in zip(fa, fb, strict=True))


def with_metadata(src: Path, dst: Path, title: str) -> Path:
    """A remux of ``src`` carrying a title and a comment, as editing tools leave them."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata.update(title=title, comment=f"made from {src.name}")
        ost = out.add_stream_from_template(inp.streams.video[0])
        ost.metadata["title"] = title
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = ost
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An x264 clip of the demo's compressed condition with a title in the container."""
    folder = tmp_path_factory.mktemp("video")
    make_clip(folder / "plain.mp4", "c1", "compressed", **SMALL)
    return with_metadata(folder / "plain.mp4", folder / "c1-compressed-crf44.mp4", "c1 compressed crf 44")


def test_h264_copy_has_the_pictures_and_no_metadata(compressed: Path, tmp_path: Path) -> None:
    original = compressed.read_bytes()
    assert b"crf=" in original and b"x264" in original and b"Lavf" in original  # what must go
    out = tmp_path / "copy.mp4"
    size = video.clean_copy(compressed, out)
    data = out.read_bytes()
    assert size == len(data) == out.stat().st_size
    for needle in (b"x264", b"crf=", b"Lavf", b"Lavc", b"c1 compressed", b"c1-compressed-crf44", b"made from"):
        assert needle not in data, needle
    with av.open(str(out)) as c:
        assert "title" not in c.metadata and "encoder" not in c.metadata and "comment" not in c.metadata
        assert "title" not in c.streams.video[0].metadata
    assert same_frames(compressed, out)
    assert out.stat().st_mtime == video.FIXED_MTIME
    assert sorted(os.listdir(tmp_path)) == ["copy.mp4"]  # no temporary left


def test_copies_of_two_conditions_differ_only_in_pictures(compressed: Path, tmp_path: Path) -> None:
    make_clip(tmp_path / "source.mp4", "c1", "source", **SMALL)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    video.clean_copy(compressed, a)
    video.clean_copy(tmp_path / "source.mp4", b)
    assert a.stat().st_mtime_ns == b.stat().st_mtime_ns
    # File type and movie header (creation times, duration) are byte-identical: no dates, no tags.
    da, db = a.read_bytes(), b.read_bytes()
    assert da[:da.index(b"trak")] == db[:db.index(b"trak")]


def test_vp9_webm_copy(tmp_path: Path) -> None:
    src = tmp_path / "c2.webm"
    make_clip(src, "c2", "noisy", codec="libvpx-vp9", **SMALL)
    assert video.copy_suffix(src) == ".webm"
    out = tmp_path / "copy.webm"
    video.clean_copy(src, out)
    data = out.read_bytes()
    # Matroska requires a muxing-app element: bitexact leaves the bare "Lavf", the same for every file.
    for needle in (b"Lavc", b"libvpx", b"Lavf6", b"ENCODER"):
        assert needle not in data, needle
    assert same_frames(src, out)


@pytest.mark.parametrize("content", [b"not a video at all" * 50, b""])
def test_unreadable_file_is_a_value_error_and_leaves_nothing(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "broken.mp4"
    src.write_bytes(content)
    out = tmp_path / "out" / "copy.mp4"
    out.parent.mkdir()
    with pytest.raises(ValueError, match="cannot be remuxed"):
        video.clean_copy(src, out)
    assert os.listdir(out.parent) == []


def test_suffixes() -> None:
    assert [video.copy_suffix(p) for p in ("a.MP4", "b.m4v", "c.mov", "d.webm", "e.mkv", "f.avi")] == [
        ".mp4", ".mp4", ".mov", ".webm", ".mkv", ".mkv"]
