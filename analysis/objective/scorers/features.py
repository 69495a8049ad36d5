"""Frame and clip statistics of the ``handcrafted`` scorer (no weights, CPU only).

A stimulus is decoded once (through :mod:`analysis.video`), front to back (no seeking: seeking in long-GOP H.264 costs a
decode from the previous keyframe each time), keeps only the frames it samples, and
reduces each to a handful of numbers, so memory stays at a few frames whatever the clip
length or resolution.

Per sampled frame (luma in full range, 0..255):

=================  ==========================================================================
``luma_mean``      mean luma / 255
``dark_clip``      fraction of pixels with luma <= 16 (crushed shadows)
``bright_clip``    fraction of pixels with luma >= 250 (blown highlights)
``contrast``       RMS contrast, std(luma) / 255
``colourfulness``  Hasler–Süsstrunk M = σ_rgyb + 0.3 μ_rgyb (on a quarter-size RGB frame)
``saturation``     mean HSV saturation (max - min) / max
``sharpness``      log10(1 + max(var(∇²Y) - 20 σ², 0)): variance of the 4-neighbour
                   Laplacian on full-resolution luma, net of the 20 σ² that white noise of
                   std σ adds to it (otherwise noise would read as detail)
``noise``          σ from Immerkær's fast estimator on luma, in grey levels, taken over the
                   flattest 10 % of 16×16 tiles (texture lifts only some tiles)
``chroma_noise``   the same estimator on the Cb/Cr planes (8×8 tiles), full-range units
``blockiness``     log of the mean luma step across 8-px block boundaries over the mean
                   step elsewhere (0 for no blocking), both directions
=================  ==========================================================================

Per stimulus: the mean over sampled frames, plus

=================  ==========================================================================
``flicker``        mean |second difference| of the per-frame mean luma over *every* decoded
                   frame, in grey levels (slow fades cancel, frame-to-frame pumping does not)
``exposure_error`` distance of ``luma_mean`` from the comfortable band [0.35, 0.55]
=================  ==========================================================================
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis import video

from ..base import ScorerError, StrPath
from .base import video_errors

if TYPE_CHECKING:
    import av


#: Feature names in the order of the feature vector.
FEATURES: tuple[str, ...] = (
    "luma_mean",
    "dark_clip",
    "bright_clip",
    "contrast",
    "colourfulness",
    "saturation",
    "sharpness",
    "noise",
    "chroma_noise",
    "blockiness",
    "flicker",
    "exposure_error",
)


_EXPOSURE_BAND = (0.35, 0.55)
_DARK_LEVEL = 16.0
_BRIGHT_LEVEL = 250.0
# Sum of squared coefficients of the 4-neighbour Laplacian: white noise of variance σ²
# adds 20 σ² to var(∇²Y).
_LAPLACIAN_NOISE_GAIN = 20.0
# 8-bit planar formats whose first plane *is* luma, read without a conversion.
_PLANAR_8BIT = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
    "yuv411p", "yuv440p", "gray",
}  # fmt: skip
# Planar YUV formats whose chroma planes are read directly: (x, y) subsampling factors.
_CHROMA_SUBSAMPLING = {
    "yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1),
    "yuv444p": (1, 1), "yuvj444p": (1, 1),
}  # fmt: skip


def _is_full_range(frame: av.VideoFrame) -> bool:
    # AVCOL_RANGE_JPEG == 2; "yuvj" formats are full range by definition. Unspecified
    # (0) means limited range for YUV, as every player assumes.
    name = frame.format.name
    return frame.color_range == 2 or name.startswith("yuvj") or name == "gray"


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    """A uint8 plane as a ``(height, width)`` view (planes are padded to ``line_size``)."""
    plane = frame.planes[index]
    return np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:height, :width]


def raw_luma(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane as a uint8 ``(height, width)`` array, without conversion when possible.

    Parameters
    ----------
    frame : av.VideoFrame

    Returns
    -------
    ndarray of uint8, shape (height, width)
        Coded levels (limited or full range as the frame is); a view of the frame's
        buffer for planar 8-bit formats.
    """
    if frame.format.name in _PLANAR_8BIT:
        return _plane(frame, 0, frame.width, frame.height)
    return frame.to_ndarray(format="gray")


def raw_chroma(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
    """The Cb and Cr planes (uint8, subsampled as coded); other formats are converted to 4:2:0.

    Parameters
    ----------
    frame : av.VideoFrame

    Returns
    -------
    cb, cr : ndarray of uint8
        Each ``(ceil(height / sy), ceil(width / sx))`` for the format's subsampling.
    """
    src = frame if frame.format.name in _CHROMA_SUBSAMPLING else frame.reformat(format="yuv420p")
    sx, sy = _CHROMA_SUBSAMPLING[src.format.name]
    cw, ch = -(-src.width // sx), -(-src.height // sy)
    return _plane(src, 1, cw, ch), _plane(src, 2, cw, ch)


def luma_to_full(mean_or_array: Any, full_range: bool) -> Any:
    """Map limited-range (16..235) luma to 0..255; identity for full-range frames.

    Parameters
    ----------
    mean_or_array : float or ndarray
        Coded luma level(s).
    full_range : bool
        Whether the levels are already full range.

    Returns
    -------
    float or ndarray
        Same type as the input; not clipped.
    """
    if full_range:
        return mean_or_array
    return (mean_or_array - 16.0) * (255.0 / 219.0)


def luma_full(frame: av.VideoFrame) -> np.ndarray:
    """Full-range float32 luma (0..255) of a frame.

    Parameters
    ----------
    frame : av.VideoFrame

    Returns
    -------
    ndarray of float32, shape (height, width)
        Clipped to [0, 255].
    """
    y = raw_luma(frame).astype(np.float32)
    if not _is_full_range(frame):
        y = luma_to_full(y, False)
        np.clip(y, 0.0, 255.0, out=y)
    return y


# --------------------------------------------------------------------------- per frame


_IMMERKAER_GAIN = math.sqrt(math.pi / 2.0) / 6.0


def _second_differences(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Laplacian, |Immerkær residual|)`` of a float32 image, sharing the work.

    ``d_xx`` is computed once and used twice: in the 4-neighbour Laplacian
    ``d_xx + d_yy`` and in Immerkær's separable mask ``N = d_yy ∘ d_xx``. The returned
    arrays are both ``(h - 2, w - 2)``, aligned on pixel ``(1, 1)``.
    """
    dxx = y[:, :-2] + y[:, 2:]
    dxx -= 2.0 * y[:, 1:-1]
    lap = y[:-2, 1:-1] + y[2:, 1:-1]
    lap -= 2.0 * y[1:-1, 1:-1]
    lap += dxx[1:-1]
    resid = dxx[:-2] + dxx[2:]
    resid -= 2.0 * dxx[1:-1]
    np.abs(resid, out=resid)
    return lap, resid


def _tile_sigma(resid: np.ndarray, block: int, quantile: float) -> float:
    rh, rw = (resid.shape[0] // block) * block, (resid.shape[1] // block) * block
    if rh < 2 * block or rw < 2 * block:
        return float(_IMMERKAER_GAIN * resid.mean(dtype=np.float64))
    tiles = resid[:rh, :rw].reshape(rh // block, block, rw // block, block).mean(axis=(1, 3))
    return float(_IMMERKAER_GAIN * np.quantile(tiles, quantile))


def laplacian_variance(y: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (valid region) of an image.

    Parameters
    ----------
    y : ndarray, shape (height, width)
        Grey levels.

    Returns
    -------
    float
        In squared grey levels; 0 for images smaller than 3 pixels a side.
    """
    y = np.asarray(y, dtype=np.float32)
    if min(y.shape) < 3:
        return 0.0
    return float(_second_differences(y)[0].var())


def immerkaer_sigma(y: np.ndarray, block: int = 16, quantile: float = 0.1) -> float:
    """Noise σ by Immerkær's fast estimator (1996), taken over the flattest image blocks.

    Immerkær: σ = √(π/2) / 6 · mean |Y * N| with ``N = [1 -2 1]ᵀ ⊗ [1 -2 1]`` (separable,
    so two second differences, which cancel linear ramps). Over a whole frame the mean
    also picks up texture, so a clean, detailed picture reads as noisy and blurring it
    reads as denoising. The estimate is therefore made per ``block``×``block`` tile and
    the ``quantile`` (default 10th percentile) of the tiles is returned: sensor noise
    lifts every tile, texture only some, so the flat tiles measure the noise.
    Falls back to the whole-frame mean on frames smaller than two tiles a side.

    Parameters
    ----------
    y : ndarray, shape (height, width)
        Grey levels.
    block : int
        Tile side, in pixels.
    quantile : float
        Quantile of the per-tile estimates returned, in [0, 1].

    Returns
    -------
    float
        σ in the grey levels of ``y``; 0 for images smaller than 3 pixels a side.
    """
    y = np.asarray(y, dtype=np.float32)
    if min(y.shape) < 3:
        return 0.0
    return _tile_sigma(_second_differences(y)[1], block, quantile)


def luma_histogram_stats(raw: np.ndarray, offset: float, k: float) -> dict[str, float]:
    """Mean, RMS contrast and clipping fractions from one 256-bin histogram of coded luma.

    One counting pass replaces four full-frame reductions. ``offset`` and ``k`` map coded
    levels to full range: ``full = (coded - offset) * k``.

    Parameters
    ----------
    raw : ndarray of uint8
        Coded luma plane.
    offset : float
        Coded black level (16 for limited range, 0 for full).
    k : float
        Full-range grey levels per coded level.

    Returns
    -------
    dict of str to float
        ``luma_mean`` and ``contrast`` (as fractions of 255), ``dark_clip`` and
        ``bright_clip`` (fractions of pixels at or below 16 / at or above 250 full-range).
    """
    hist = np.bincount(np.ascontiguousarray(raw).ravel(), minlength=256).astype(np.float64)
    n = hist.sum()
    levels = np.clip((np.arange(256) - offset) * k, 0.0, 255.0)
    mean = float(hist @ levels) / n
    var = float(hist @ (levels - mean) ** 2) / n
    return {
        "luma_mean": mean / 255.0,
        "dark_clip": float(hist[levels <= _DARK_LEVEL].sum()) / n,
        "bright_clip": float(hist[levels >= _BRIGHT_LEVEL].sum()) / n,
        "contrast": math.sqrt(max(var, 0.0)) / 255.0,
    }


def blockiness(y: np.ndarray, block: int = 8) -> float:
    """log(mean step across block boundaries / mean step elsewhere), both directions.

    Coding blocks show as luma steps every ``block`` pixels; natural content has no
    preferred phase, so the ratio is ≈1 (log ≈ 0) without blocking.

    Parameters
    ----------
    y : ndarray, shape (height, width)
        Luma.
    block : int
        Coding block size, in pixels.

    Returns
    -------
    float
        The log of the ratio averaged over both directions, clipped at 0 (also 0 for
        images no larger than one block).
    """
    h, w = y.shape
    if h <= block or w <= block:
        return 0.0
    ratios = []
    for steps in (np.abs(np.diff(y, axis=1)).mean(axis=0), np.abs(np.diff(y, axis=0)).mean(axis=1)):
        on = np.zeros(steps.shape[0], dtype=bool)
        on[block - 1 :: block] = True  # step between pixel 8k-1 and 8k
        ratios.append((steps[on].mean() + 1e-3) / (steps[~on].mean() + 1e-3))
    return float(max(math.log(float(np.mean(ratios))), 0.0))


def colour_stats(rgb: np.ndarray) -> tuple[float, float]:
    """Hasler–Süsstrunk colourfulness and mean HSV saturation of an RGB uint8 image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (height, width, 3)

    Returns
    -------
    colourfulness : float
        Hasler–Süsstrunk M (0 for a grey image).
    saturation : float
        Mean ``(max − min) / max`` over pixels, in [0, 1].
    """
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    # Element-wise max/min of the three planes: far faster than reducing over axis 2.
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    saturation = float(np.mean((mx - mn) / np.maximum(mx, 1.0)))
    return colourfulness, saturation


def chroma_noise(cb: np.ndarray, cr: np.ndarray, full_range: bool) -> float:
    """Mean :func:`immerkaer_sigma` of the two colour-difference planes, full-range units.

    Sensor and colour noise is largely independent per channel, so it shows in Cb/Cr,
    while natural texture mostly varies in brightness — which is what lets the model
    tell a noisy picture from a detailed one (the luma estimate cannot).

    Parameters
    ----------
    cb, cr : ndarray of uint8
        Coded chroma planes (8×8 tiles).
    full_range : bool
        Whether the planes are full range (else limited, 16..240, scaled by 255/224).

    Returns
    -------
    float
    """
    scale = 1.0 if full_range else 255.0 / 224.0
    sigma = immerkaer_sigma(cb.astype(np.float32), block=8) + immerkaer_sigma(cr.astype(np.float32), block=8)
    return 0.5 * scale * sigma


def frame_features(frame: av.VideoFrame) -> dict[str, float]:
    """Per-frame descriptors of one decoded frame (see the module docstring).

    Statistics are taken on the coded luma and mapped to full range afterwards (each is
    affine- or scale-equivariant), which saves full-frame passes on every frame.

    Parameters
    ----------
    frame : av.VideoFrame

    Returns
    -------
    dict of str to float
        ``luma_mean, dark_clip, bright_clip, contrast, colourfulness, saturation,
        sharpness, noise, chroma_noise, blockiness``.
    """
    full = _is_full_range(frame)
    k = 1.0 if full else 255.0 / 219.0  # full-range grey levels per coded level
    raw = raw_luma(frame)
    feats = luma_histogram_stats(raw, 0.0 if full else 16.0, k)
    y = raw.astype(np.float32)
    if min(y.shape) >= 3:
        lap, resid = _second_differences(y)
        lap_var = k * k * float(lap.var())
        sigma = k * _tile_sigma(resid, 16, 0.1)
    else:
        lap_var = sigma = 0.0
    # Colour statistics are global: a quarter-size RGB frame (a fast swscale step)
    # measures them as well as the full one.
    rgb = frame.reformat(width=max(frame.width // 4, 2), height=max(frame.height // 4, 2), format="rgb24").to_ndarray()
    colourfulness, saturation = colour_stats(rgb)
    cb, cr = raw_chroma(frame)
    feats.update(
        colourfulness=colourfulness,
        saturation=saturation,
        sharpness=math.log10(1.0 + max(lap_var - _LAPLACIAN_NOISE_GAIN * sigma * sigma, 0.0)),
        noise=sigma,
        chroma_noise=chroma_noise(cb, cr, full),
        blockiness=blockiness(y),
    )
    return feats


def temporal_flicker(frame_means: np.ndarray) -> float:
    """Mean |m_t - (m_{t-1} + m_{t+1}) / 2| of per-frame mean luma (grey levels).

    Parameters
    ----------
    frame_means : ndarray, shape (n_frames,)
        Mean full-range luma of every frame, in order.

    Returns
    -------
    float
        In grey levels; 0 for fewer than 3 frames.
    """
    m = np.asarray(frame_means, dtype=np.float64)
    if m.size < 3:
        return 0.0
    return float(np.abs(m[1:-1] - 0.5 * (m[:-2] + m[2:])).mean())


def exposure_error(luma_mean: float) -> float:
    """Distance of the mean luma (0..1) from the comfortable band [0.35, 0.55].

    Parameters
    ----------
    luma_mean : float
        Mean full-range luma as a fraction of 255.

    Returns
    -------
    float
        0 inside the band.
    """
    lo, hi = _EXPOSURE_BAND
    return max(lo - luma_mean, luma_mean - hi, 0.0)


def video_features(
    path: StrPath,
    *,
    frames: int | None = 32,
    every: int | None = None,
    threads: bool = True,
    overlap: bool = True,
) -> dict[str, float]:
    """Per-stimulus feature dict (:data:`FEATURES`), decoding the file once.

    Parameters
    ----------
    path
        The video file.
    frames, every
        Sampling (see :func:`analysis.video.iter_decoded`).
    threads
        FFmpeg decoder threads.
    overlap
        Compute a sampled frame's features on a helper thread while decoding goes on
        (NumPy and swscale release the GIL). At most two sampled frames are in flight,
        so memory stays bounded.

    Returns
    -------
    dict of str to float
        Every name of :data:`FEATURES`: per-frame descriptors averaged over the sampled
        frames, plus ``flicker`` (over every frame) and ``exposure_error``.

    Raises
    ------
    ScorerError
        If the file cannot be decoded or has no frames.
    """
    sums: dict[str, float] = {}
    n_sampled = 0
    means: list[float] = []
    full_range: bool | None = None
    pending: deque[Future[dict[str, float]]] = deque()

    def add(values: dict[str, float]) -> None:
        nonlocal n_sampled
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        n_sampled += 1

    with video_errors(), ThreadPoolExecutor(max_workers=1) if overlap else nullcontext() as pool:
        for _index, frame, sampled in video.iter_decoded(path, frames=frames, every=every, threads=threads):
            if full_range is None:
                full_range = _is_full_range(frame)
            # Cheap mean of every frame for flicker: a 1-in-16 pixel subsample of the
            # coded plane (brightness pumping is global, so the subsample sees all of it).
            sub = raw_luma(frame)[::4, ::4]
            means.append(float(luma_to_full(float(sub.sum(dtype=np.uint64)) / sub.size, full_range)))
            if not sampled:
                continue
            if pool is None:
                add(frame_features(frame))
                continue
            pending.append(pool.submit(frame_features, frame))
            while len(pending) > 2:
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())
    if not means:
        raise ScorerError(f"{path}: no decodable video frames")
    if n_sampled == 0:
        # The metadata promised more frames than the file holds: score the last one
        # rather than fail (this re-decodes, but only for such broken headers).
        last = len(means) - 1
        with video_errors():
            for _index, frame in video.iter_frames(path, indices=[last], threads=threads):
                add(frame_features(frame))
    feats = {key: value / n_sampled for key, value in sums.items()}
    feats["flicker"] = temporal_flicker(np.asarray(means))
    feats["exposure_error"] = exposure_error(feats["luma_mean"])
    return {key: float(feats[key]) for key in FEATURES}
