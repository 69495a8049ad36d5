"""analysis.video: probe, frame counts, sampled decoding, RGB, keyframes, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from analysis import video

W, H, N = 64, 48, 10


def encode(path: Path, n: int = N, fps: int = 25, codec: str = "libx264", gop: int = 25) -> Path:
    """A small clip whose frame ``i`` is a flat grey of level ``20 * i`` (mod 256)."""
    fmt = "webm" if path.suffix == ".webm" else "mp4"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop)}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 20 * i % 256, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(tmp_path_factory.mktemp("video_io") / "clip.mp4")


def test_probe_reads_size_rate_duration_count_codec_and_file_size(clip: Path) -> None:
    info = video.probe(clip)
    assert info == video.VideoInfo(width=W, height=H, fps=25.0, duration_s=pytest.approx(N / 25), n_frames=N,
                                   codec="h264", size_bytes=clip.stat().st_size)
    assert video.probe(clip, count_frames=True, decode_first=True) == info


def test_probe_counts_webm_frames_only_when_asked(tmp_path: Path) -> None:
    webm = encode(tmp_path / "clip.webm", n=6, fps=30, codec="libvpx-vp9")
    counted = video.probe(webm, count_frames=True)
    assert (counted.n_frames, counted.codec, counted.duration_s) == (6, "vp9", pytest.approx(0.2))
    assert video.probe(webm).n_frames == 6  # header has no count: estimated from the duration
    assert video.count_frames(webm) == 6


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "cannot be decoded as video"),
    (b"\0" * 4096, "cannot be decoded as video"),
    (None, "cannot be read"),
])
def test_unreadable_files_are_video_errors_naming_file_and_problem(
        tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "junk.mp4"
    if content is not None:
        path.write_bytes(content)
    for call in (video.probe, video.count_frames, lambda p: list(video.iter_frames(p)),
                 lambda p: list(video.read_rgb(p))):
        with pytest.raises(video.VideoError) as caught:
            call(path)
        assert str(caught.value).startswith(f"{path}: {problem}")
        assert caught.value.problem.startswith(problem) and isinstance(caught.value, ValueError)
    assert not video.keyframes_every(path, 25, 25)


def test_truncated_file_fails_the_frame_count_check(tmp_path: Path, clip: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size * 2 // 3])
    with pytest.raises(video.VideoError, match=r"cut\.mp4"):
        video.probe(cut, count_frames=True)


def test_sample_indices() -> None:
    assert video.sample_indices(10, 3).tolist() == [0, 4, 9]
    assert video.sample_indices(3, 8).tolist() == [0, 1, 2]
    assert video.sample_indices(0, 3).size == video.sample_indices(5, 0).size == 0


def test_sampled_decoding(clip: Path) -> None:
    decoded = list(video.iter_decoded(clip, frames=3))
    assert [i for i, _, _ in decoded] == list(range(N))
    assert [i for i, _, sampled in decoded if sampled] == [0, 4, 9]
    assert [i for i, _, sampled in video.iter_decoded(clip, every=4) if sampled] == [0, 4, 8]
    with pytest.raises(ValueError, match="every"):
        next(video.iter_decoded(clip, every=0))
    assert [i for i, _ in video.iter_frames(clip, indices=[9, 2])] == [2, 9]
    assert list(video.iter_frames(clip, indices=[])) == []
    assert len(list(video.iter_frames(clip))) == N


def test_rgb_and_bgr_arrays(clip: Path) -> None:
    frames = list(video.read_rgb(clip))
    assert len(frames) == N and frames[0].shape == (H, W, 3) and frames[0].dtype == np.uint8
    levels = [float(f.mean()) for f in frames]
    assert levels == sorted(levels) and abs(levels[5] - 100) < 4  # colour-faithful round trip
    _, frame = next(video.iter_frames(clip, indices=[5]))
    assert np.array_equal(video.to_bgr(frame), frame.to_ndarray(format="bgr24"))


def test_keyframes_every(tmp_path: Path, clip: Path) -> None:
    sparse = encode(tmp_path / "sparse.mp4", n=30, gop=250)
    assert video.keyframes_every(clip, 25, 25)
    assert not video.keyframes_every(sparse, 25, 10)
    assert video.keyframes_every(sparse, 25, 30)


def test_importing_analysis_video_does_not_load_av() -> None:
    code = "import sys, analysis, analysis.video; sys.exit('av' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
