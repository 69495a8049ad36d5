"""The demo's synthetic clips: sources, degradations, encoding/probing and the demo set."""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from analysis import video
from study_app.demo import clipset, conditions, degradations, encoder, sources

W, H = 160, 96
FRAME_DEGRADATIONS = [name for name, d in degradations.DEGRADATIONS.items() if not d.is_encoder_setting]
STRENGTHS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def clip_psnr(frames_a: list[np.ndarray], frames_b: list[np.ndarray]) -> float:
    assert len(frames_a) == len(frames_b)
    return psnr(np.stack(frames_a), np.stack(frames_b))


@pytest.fixture(scope="module")
def src() -> list[np.ndarray]:
    return list(sources.source_frames("c2", W, H, 12))


# --------------------------------------------------------------------------- sources


def test_source_frames_shape_dtype_and_determinism() -> None:
    a = list(sources.source_frames("c1", W, H, 10, fps=25))
    b = list(sources.source_frames("c1", W, H, 10, fps=25))
    assert len(a) == 10
    for x, y in zip(a, b, strict=True):
        assert x.shape == (H, W, 3) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)
    # Frames are fresh arrays, not views of one buffer.
    assert not np.shares_memory(a[0], a[1])
    # The picture moves, and uses a real range of values.
    assert np.abs(a[0].astype(int) - a[9]).mean() > 2.0
    assert a[0].std() > 20


def test_index_content_is_an_alias_and_seed_changes_texture() -> None:
    by_name = next(sources.source_frames("c3", W, H, 1))
    by_index = next(sources.source_frames(2, W, H, 1))
    np.testing.assert_array_equal(by_name, by_index)
    reseeded = next(sources.source_frames("c3", W, H, 1, seed=123))
    assert np.abs(reseeded.astype(int) - by_name).mean() > 5.0


def test_contents_are_visibly_different() -> None:
    firsts = {c: next(sources.source_frames(c, W, H, 1)).astype(np.float64) for c in ("c1", "c2", "c3", "c4", "c5")}
    names = list(firsts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pixel_diff = np.abs(firsts[a] - firsts[b]).mean()
            palette_diff = np.abs(firsts[a].mean(axis=(0, 1)) - firsts[b].mean(axis=(0, 1))).max()
            assert pixel_diff > 25 and palette_diff > 8, (a, b, pixel_diff, palette_diff)
    # Any other string is a valid, deterministic content too.
    np.testing.assert_array_equal(
        next(sources.source_frames("beach", W, H, 1)), next(sources.source_frames("beach", W, H, 1))
    )


def test_source_frames_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        sources.source_frames("c1", 8, 8)
    with pytest.raises(ValueError):
        sources.source_frames("c1", W, H, fps=0)
    with pytest.raises(ValueError):
        sources.source_frames(-1, W, H)
    with pytest.raises(TypeError):
        sources.source_frames(1.5, W, H)  # type: ignore[arg-type]
    assert list(sources.source_frames("c1", W, H, 0)) == []


# --------------------------------------------------------------------------- degradations


def test_registry_has_the_documented_degradations() -> None:
    assert set(degradations.DEGRADATIONS) == {"under_exposure", "noise", "blur", "compression", "flicker", "enhance"}
    assert degradations.DEGRADATIONS["compression"].is_encoder_setting
    assert not degradations.DEGRADATIONS["enhance"].worse_with_strength


@pytest.mark.parametrize("name", FRAME_DEGRADATIONS)
def test_strength_zero_is_identity_and_distortion_grows(name: str, src: list[np.ndarray]) -> None:
    deg = degradations.DEGRADATIONS[name]
    scores = []
    for s in STRENGTHS:
        out = list(deg.apply_all(src, s, seed=7))
        assert all(o.shape == f.shape and o.dtype == np.uint8 for o, f in zip(out, src, strict=True))
        scores.append(clip_psnr(out, src))
    assert scores[0] == float("inf")
    assert all(a > b for a, b in itertools.pairwise(scores)), (name, scores)
    assert scores[-1] < 40.0


@pytest.mark.parametrize("name", FRAME_DEGRADATIONS)
def test_degradations_are_deterministic_and_do_not_modify_input(name: str, src: list[np.ndarray]) -> None:
    deg = degradations.DEGRADATIONS[name]
    frame = src[3].copy()
    a = deg.apply(frame, 0.6, index=3, seed=1)
    b = deg.apply(frame, 0.6, index=3, seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(frame, src[3])


def test_strength_outside_unit_interval_is_rejected(src: list[np.ndarray]) -> None:
    for s in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            degradations.DEGRADATIONS["noise"].apply(src[0], s)
    with pytest.raises(ValueError):
        degradations.DEGRADATIONS["blur"].apply(src[0][..., 0], 0.5)


def test_noise_is_gaussian_with_the_documented_sigma_and_varies_in_time() -> None:
    grey = np.full((H, W, 3), 128, np.uint8)
    deg = degradations.DEGRADATIONS["noise"]
    a = deg.apply(grey, 0.5, index=0, seed=3).astype(np.float64) - 128
    b = deg.apply(grey, 0.5, index=1, seed=3).astype(np.float64) - 128
    assert a.std() == pytest.approx(degradations.NOISE_SIGMA_MAX * 0.5, rel=0.05)
    assert abs(a.mean()) < 0.3
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05  # a new draw every frame


def test_under_exposure_darkens_and_flicker_oscillates(src: list[np.ndarray]) -> None:
    dark = degradations.DEGRADATIONS["under_exposure"].apply(src[0], 0.5)
    assert dark.mean() < 0.7 * src[0].mean()
    flicker = list(degradations.DEGRADATIONS["flicker"].apply_all(src, 0.8, seed=2))
    ratios = np.array([o.mean() / f.mean() for o, f in zip(flicker, src, strict=True)])
    assert ratios.max() > 1.08 and ratios.min() < 0.92


def _sharpness(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    return float(np.mean(np.diff(g, axis=0) ** 2) + np.mean(np.diff(g, axis=1) ** 2))


def test_blur_removes_detail_and_enhance_adds_it_mildly(src: list[np.ndarray]) -> None:
    frame = src[0]
    sharp = [_sharpness(degradations.DEGRADATIONS["blur"].apply(frame, s)) for s in STRENGTHS]
    assert all(a > b for a, b in itertools.pairwise(sharp))
    enhanced = degradations.DEGRADATIONS["enhance"].apply(frame, 1.0)
    assert _sharpness(enhanced) > 1.2 * _sharpness(frame)

    def chroma(x: np.ndarray) -> float:
        return float(x.astype(np.float64).std(axis=2).mean())

    assert chroma(enhanced) > chroma(frame)
    assert psnr(enhanced, frame) > 20.0  # an enhancement, not a different picture


def test_gaussian_blur_has_the_requested_sigma() -> None:
    impulse = np.zeros((61, 61, 1), np.float32)
    impulse[30, 30] = 1.0
    yy, xx = np.mgrid[-30:31, -30:31]
    for sigma in (0.4, 1.0, 2.5, 5.0):
        k = degradations.gaussian_blur(impulse, sigma)[..., 0]
        assert k.sum() == pytest.approx(1.0, abs=1e-4)
        assert np.sqrt((k * xx**2).sum()) == pytest.approx(sigma, rel=1e-3)
        assert np.sqrt((k * yy**2).sum()) == pytest.approx(sigma, rel=1e-3)
    flat = np.full((20, 30, 3), 77, np.uint8)
    np.testing.assert_allclose(degradations.gaussian_blur(flat, 3.0), 77.0, atol=1e-3)


def test_compression_is_an_encoder_setting() -> None:
    comp = degradations.DEGRADATIONS["compression"]
    crfs = [comp.crf(s) for s in STRENGTHS]
    assert crfs[0] == 18 and crfs[-1] == 51
    assert all(a < b for a, b in itertools.pairwise(crfs))
    assert comp.crf(1.0, "libvpx-vp9") == 63
    assert degradations.DEGRADATIONS["noise"].crf(0.5) is None


# --------------------------------------------------------------------------- encode / probe


def test_write_clip_probe_and_decode_round_trip(tmp_path: Path, src: list[np.ndarray]) -> None:
    path = tmp_path / "clip.mp4"
    info = encoder.write_clip(path, src, fps=25)
    assert info == video.VideoInfo(width=W, height=H, fps=25.0, duration_s=12 / 25, n_frames=12, codec="h264",
                                   size_bytes=path.stat().st_size)
    assert video.probe(path) == info
    assert video.probe(path, count_frames=True) == info
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (W, H)
        assert stream.average_rate == 25
        assert sum(1 for _ in container.decode(stream)) == 12
    decoded = list(video.read_rgb(path))
    assert len(decoded) == 12 and decoded[0].shape == (H, W, 3)
    assert clip_psnr(decoded, src) > 30.0  # BT.709 in, BT.709 out: no colour shift
    assert not [p for p in tmp_path.iterdir() if p.name != "clip.mp4"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # servable, not owner-only


def test_failed_write_keeps_the_old_clip(tmp_path: Path, src: list[np.ndarray]) -> None:
    path = tmp_path / "clip.mp4"
    encoder.write_clip(path, src[:4])
    before = path.read_bytes()

    def broken() -> Iterator[np.ndarray]:
        yield from src[:3]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        encoder.write_clip(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_write_clip_other_rates_and_vp9(tmp_path: Path, src: list[np.ndarray]) -> None:
    ntsc = encoder.write_clip(tmp_path / "ntsc.mp4", src[:6], fps=29.97)
    assert ntsc.fps == pytest.approx(30000 / 1001) and ntsc.n_frames == 6
    webm = encoder.write_clip(tmp_path / "clip.webm", src[:6], fps=30, codec="libvpx-vp9", crf=30)
    assert (webm.width, webm.height, webm.n_frames, webm.codec) == (W, H, 6, "vp9")
    assert webm.fps == pytest.approx(30.0) and webm.duration_s == pytest.approx(0.2)
    assert len(list(video.read_rgb(tmp_path / "clip.webm"))) == 6


def test_write_clip_rejects_bad_input_without_leaving_files(tmp_path: Path, src: list[np.ndarray]) -> None:
    odd = [np.zeros((H, W - 1, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match="even"):
        encoder.write_clip(tmp_path / "odd.mp4", odd)
    with pytest.raises(ValueError, match="no frames"):
        encoder.write_clip(tmp_path / "empty.mp4", [])
    with pytest.raises(ValueError, match="size"):
        encoder.write_clip(tmp_path / "mixed.mp4", [src[0], src[0][:48, :80].copy()])
    with pytest.raises(ValueError, match="WebM"):
        encoder.write_clip(tmp_path / "x.webm", src[:2], codec="libx264")
    with pytest.raises(ValueError, match="suffix"):
        encoder.write_clip(tmp_path / "x.avi", src[:2])
    assert list(tmp_path.iterdir()) == []


def test_probe_rejects_garbage_and_truncated_files(tmp_path: Path, src: list[np.ndarray]) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError):
        video.probe(garbage)
    good = tmp_path / "good.mp4"
    encoder.write_clip(good, src)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError):
        video.probe(cut, count_frames=True)


def _keyframes(path: Path) -> tuple[list[float], float, float]:
    """Keyframe times, the first frame's time and the last frame's time of a clip, by demuxing (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted((float(p.pts * stream.time_base), p.is_keyframe)
                         for p in container.demux(stream) if p.size)
    return [t for t, key in packets if key], packets[0][0], packets[-1][0]


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", ".mp4"), ("libvpx-vp9", ".webm")])
@pytest.mark.parametrize("fps", [25, 29.97, 12.5])
def test_clips_have_a_keyframe_at_least_every_second(tmp_path: Path, codec: str, suffix: str, fps: float) -> None:
    path = tmp_path / f"clip{suffix}"
    clipset.make_clip(path, "c1", "noisy", W, H, seconds=3.2, fps=fps, codec=codec)
    keys, first, last = _keyframes(path)
    assert keys[0] == first  # the first frame is a keyframe
    assert len(keys) >= 4, keys  # the encoder's default would give one
    assert max(b - a for a, b in itertools.pairwise([*keys, last])) <= 1.0 + 1e-6, keys
    assert encoder.keyframe_interval(fps) == int(fps)


# --------------------------------------------------------------------------- clips & conditions


def test_make_clip_sizes_and_condition_specs(tmp_path: Path) -> None:
    info = clipset.make_clip(tmp_path / "a.mp4", "c1", None, W, H, seconds=0.4, fps=25)
    assert (info.width, info.height, info.n_frames, info.fps) == (W, H, 10, 25.0)
    assert clipset.make_clip(tmp_path / "b.mp4", "c1", "source", W, H, 0.4, 25) == info
    chained = [{"degradation": "blur", "strength": 0.3}, {"degradation": "compression", "strength": 0.5}]
    assert clipset.make_clip(tmp_path / "c.mp4", "c1", chained, W, H, 0.4, 25).n_frames == 10
    assert [(d.name, s) for d, s in conditions.normalize_condition("noisy")] == [("noise", 0.25)]
    assert conditions.normalize_condition({"degradation": "blur"})[0][1] == 0.5
    for bad in (
        "sparkle",
        {"degradation": "noise", "strength": 2},
        {"degradation": "noise", "amount": 1},
        [{"degradation": "compression", "strength": 0.1}, {"degradation": "compression", "strength": 0.2}],
    ):
        with pytest.raises(ValueError):
            clipset.make_clip(tmp_path / "bad.mp4", "c1", bad, W, H, 0.4, 25)
    assert not (tmp_path / "bad.mp4").exists()


def test_make_clip_noise_is_deterministic_and_visible(tmp_path: Path) -> None:
    clean_path = tmp_path / "clean.mp4"
    clipset.make_clip(clean_path, "c4", None, W, H, 0.4, 25)
    clean = list(video.read_rgb(clean_path))
    noisy_path = tmp_path / "noisy.mp4"
    clipset.make_clip(noisy_path, "c4", {"degradation": "noise", "strength": 0.5}, W, H, 0.4, 25)
    again = tmp_path / "noisy2.mp4"
    clipset.make_clip(again, "c4", {"degradation": "noise", "strength": 0.5}, W, H, 0.4, 25)
    noisy, noisy2 = list(video.read_rgb(noisy_path)), list(video.read_rgb(again))
    assert all(np.array_equal(a, b) for a, b in zip(noisy, noisy2, strict=True))  # deterministic
    src = list(sources.source_frames("c4", W, H, 10))
    assert clip_psnr(noisy, src) < clip_psnr(clean, src) - 5


def test_compression_gives_smaller_files_and_lower_psnr(tmp_path: Path) -> None:
    src = list(sources.source_frames("c1", W, H, 10))
    sizes, scores = [], []
    for s in (0.0, 0.5, 0.9):
        path = tmp_path / f"comp{s}.mp4"
        clipset.make_clip(path, "c1", {"degradation": "compression", "strength": s}, W, H, 0.4, 25)
        sizes.append(path.stat().st_size)
        scores.append(clip_psnr(list(video.read_rgb(path)), src))
    assert sizes[0] > sizes[1] > sizes[2]
    assert scores[0] > scores[1] > scores[2]


def test_demo_conditions_and_expected_order_agree() -> None:
    assert set(conditions.EXPECTED_ORDER) == set(conditions.DEMO_CONDITIONS)
    assert len(conditions.EXPECTED_ORDER) == 6 and conditions.REFERENCE_CONDITION in conditions.EXPECTED_ORDER
    assert conditions.DEMO_CONDITIONS[conditions.REFERENCE_CONDITION] is None
    used = {spec["degradation"] for spec in conditions.DEMO_CONDITIONS.values() if spec}
    assert used == {"enhance", "noise", "blur", "under_exposure", "compression"}
    # Every degraded condition really is worse than the clean one, the enhancement is milder.
    frame = next(sources.source_frames("c1", W, H, 1))
    for name, spec in conditions.DEMO_CONDITIONS.items():
        for deg, s in conditions.normalize_condition(spec):
            if not deg.is_encoder_setting:
                assert psnr(deg.apply(frame, s), frame) < 40, name


# --------------------------------------------------------------------------- demo set

SMALL = dict(width=64, height=48, seconds=0.2, fps=25)
TWO = {"source": None, "dark": {"degradation": "under_exposure", "strength": 0.5}}


def test_generate_demo_writes_then_reuses_then_repairs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = clipset.generate_demo(tmp_path, contents=("c1", "c2"), workers=1, conditions=TWO, verbose=True, **SMALL)
    assert paths == [tmp_path / c / f"{k}.mp4" for c in ("c1", "c2") for k in TWO]
    assert "4 clip(s) written" in capsys.readouterr().out
    for p in paths:
        info = video.probe(p)
        assert (info.width, info.height, info.n_frames) == (64, 48, 5)
    stamps = {p: p.stat().st_mtime_ns for p in paths}

    assert clipset.generate_demo(tmp_path, contents=("c1", "c2"), workers=1, conditions=TWO, **SMALL) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps  # nothing rewritten

    broken, emptied = paths[1], paths[2]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    emptied.write_bytes(b"")
    clipset.generate_demo(tmp_path, contents=("c1", "c2"), workers=1, conditions=TWO, verbose=True, **SMALL)
    assert "2 clip(s) written, 2 kept" in capsys.readouterr().out
    assert video.probe(broken, count_frames=True).n_frames == 5
    assert video.probe(emptied, count_frames=True).n_frames == 5
    assert {p for p in paths if p.stat().st_mtime_ns == stamps[p]} == {paths[0], paths[3]}
    # A different size makes every clip stale.
    clipset.generate_demo(
        tmp_path, contents=("c1",), workers=1, conditions={"source": None}, width=80, height=48, seconds=0.2, fps=25
    )
    assert video.probe(paths[0]).width == 80
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".mp4"]
    assert leftovers == []


def test_generate_demo_in_parallel(tmp_path: Path) -> None:
    paths = clipset.generate_demo(tmp_path, contents=("c3",), workers=2, conditions=TWO, **SMALL)
    assert [video.probe(p).n_frames for p in paths] == [5, 5]


def test_generate_demo_redoes_clips_with_sparse_keyframes(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun must not keep clips written before keyframes came every second (one keyframe in 5 s)."""
    options = encoder._encoder_options
    monkeypatch.setattr(encoder, "_encoder_options", lambda codec, crf, preset, gop: options(codec, crf, preset, 250))
    two_seconds = {**SMALL, "seconds": 2.4}
    paths = clipset.generate_demo(tmp_path, contents=("c1",), workers=1, conditions=TWO, **two_seconds)
    assert [len(_keyframes(p)[0]) for p in paths] == [1, 1]
    monkeypatch.undo()
    capsys.readouterr()
    clipset.generate_demo(tmp_path, contents=("c1",), workers=1, conditions=TWO, verbose=True, **two_seconds)
    assert "2 clip(s) written, 0 kept" in capsys.readouterr().out
    assert [_keyframes(p)[0] for p in paths] == [[0.0, 1.0, 2.0]] * 2
    clipset.generate_demo(tmp_path, contents=("c1",), workers=1, conditions=TWO, verbose=True, **two_seconds)
    assert "0 clip(s) written, 2 kept" in capsys.readouterr().out


def test_example_script(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = Path(__file__).resolve().parents[1] / "examples" / "demo" / "generate_clips.py"
    spec = importlib.util.spec_from_file_location("generate_clips", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = [
        "--small",
        "--out",
        os.fspath(tmp_path),
        "--contents",
        "c1",
        "--conditions",
        "source",
        "compressed",
        "--workers",
        "1",
        "--seconds",
        "0.2",
        "-q",
    ]
    assert module.main(args) == 0
    assert "2 clips (320x180" in capsys.readouterr().out
    assert video.probe(tmp_path / "c1" / "compressed.mp4").width == 320
