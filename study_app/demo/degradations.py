"""Named, strength-parameterised degradations of the demo's synthetic clips.

:data:`DEGRADATIONS` holds ``under_exposure``, ``noise``, ``blur``, ``compression``,
``flicker`` and ``enhance``. ``strength`` lies in ``[0, 1]``; 0 is the identity and
larger is worse, except for ``enhance`` where larger is a stronger (still mild)
enhancement. ``compression`` is an encoder setting, not a frame filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from study_app.demo.encoder import CRF_RANGE, check_frame

__all__ = ["BLUR_SIGMA_MAX", "DEGRADATIONS", "NOISE_SIGMA_MAX", "Degradation", "check_strength", "gaussian_blur"]


def check_strength(strength: float) -> float:
    """``strength`` as a float.

    Raises
    ------
    ValueError
        Outside ``[0, 1]`` or NaN.
    """
    s = float(strength)
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise ValueError(f"strength must lie in [0, 1], got {strength!r}")
    return s


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x, out=x), 0.0, 255.0, out=x).astype(np.uint8)


def _box_passes0(x: np.ndarray, v: float, passes: int = 3) -> np.ndarray:
    """``passes`` extended-box passes of variance ``v`` (px²) each, along axis 0 (edges replicated).

    The extended box (Gwosdek et al., 2011) is a box of radius ``r`` plus
    fractional weights ``alpha`` at ``±(r + 1)``, i.e. ``(1 - alpha)`` times the
    radius-``r`` box sum plus ``alpha`` times the radius-``r + 1`` one; its
    variance is a continuous function of ``(r, alpha)``. Three passes
    approximate a Gaussian closely. Each pass is one running sum (a loop over
    the leading axis, which NumPy vectorises along the rows) and a few slices.
    """
    r = int((math.sqrt(12.0 * v + 1.0) - 1.0) / 2.0)
    while (r + 1) * (r + 2) / 3.0 <= v:
        r += 1
    while r > 0 and r * (r + 1) / 3.0 > v:
        r -= 1
    alpha = (2 * r + 1) * (r * (r + 1) / 3.0 - v) / (2.0 * (v - (r + 1) ** 2))
    norm = 2 * r + 1 + 2 * alpha
    c_in, c_out = np.float32((1.0 - alpha) / norm), np.float32(alpha / norm)
    n, p = x.shape[0], r + 1
    # csum[p + m] = sum of the edge-extended signal over positions [0, m).
    csum = np.empty((n + 1 + 2 * p, *x.shape[1:]), np.float32)
    for _ in range(passes):
        steps = np.arange(p, 0, -1, dtype=np.float32).reshape((p,) + (1,) * (x.ndim - 1))
        np.multiply(-steps, x[0], out=csum[:p])
        csum[p] = 0.0
        for i in range(n):
            np.add(csum[p + i], x[i], out=csum[p + i + 1])
        np.add(csum[p + n], steps[::-1] * x[n - 1], out=csum[p + n + 1 :])
        out = np.subtract(csum[p + r + 1 : p + r + 1 + n], csum[p - r : p - r + n])
        if alpha > 0.0:
            outer = np.subtract(csum[p + r + 2 : p + r + 2 + n], csum[p - r - 1 : p - r - 1 + n])
            out *= c_in
            outer *= c_out
            out += outer
        else:
            out *= np.float32(1.0 / norm)
        x = out
    return x


def _swap01(x: np.ndarray) -> np.ndarray:
    """Contiguous ``x.swapaxes(0, 1)`` of an ``(H, W, C)`` array (pixels moved as whole items)."""
    items = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[2])))
    return np.ascontiguousarray(items.reshape(x.shape[:2]).T).view(x.dtype).reshape(x.shape[1], x.shape[0], x.shape[2])


def gaussian_blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an ``(H, W, C)`` image (three extended-box passes per axis).

    Parameters
    ----------
    frame : numpy.ndarray
        ``uint8`` or float image, channels last.
    sigma : float
        Standard deviation in pixels; ``0`` returns a float32 copy.

    Returns
    -------
    numpy.ndarray
        ``float32`` image of the same shape (not rounded). Edges are
        replicated; the cost does not depend on ``sigma``.
    """
    x = np.asarray(frame)
    if x.ndim == 2:
        return gaussian_blur(x[..., None], sigma)[..., 0]
    if sigma <= 0:
        return x.astype(np.float32)
    v = float(sigma) ** 2 / 3.0
    xt = _swap01(x).astype(np.float32)  # transpose the narrow dtype, not float32
    xt = _box_passes0(xt, v)
    return _box_passes0(_swap01(xt), v)


FrameFn = Callable[[np.ndarray, float, int, int, float], np.ndarray]


@dataclass(frozen=True)
class Degradation:
    """A named, strength-parameterised degradation.

    Frame degradations have ``frame_fn``; encoder degradations
    (``compression``) have ``encoder_fn`` and leave frames untouched.

    Attributes
    ----------
    name : str
        Registry key.
    description : str
        What the degradation simulates and what ``strength = 1`` means.
    frame_fn : callable or None
        ``frame_fn(frame, strength, index, seed, fps) -> frame``.
    encoder_fn : callable or None
        ``encoder_fn(strength, codec) -> crf`` for encoder degradations.
    worse_with_strength : bool
        False for ``enhance`` (larger strength = stronger enhancement).
    """

    name: str
    description: str
    frame_fn: FrameFn | None = None
    encoder_fn: Callable[[float, str], float] | None = None
    worse_with_strength: bool = True

    @property
    def is_encoder_setting(self) -> bool:
        """True when the degradation is applied by the encoder, not to frames."""
        return self.encoder_fn is not None

    def apply(
        self, frame: np.ndarray, strength: float, *, index: int = 0, seed: int = 0, fps: float = 25.0
    ) -> np.ndarray:
        """Degrade one RGB ``uint8`` frame (a new array; the input is not modified).

        Parameters
        ----------
        frame : numpy.ndarray
            ``(H, W, 3)`` RGB ``uint8``.
        strength : float
            In ``[0, 1]``; 0 returns an unchanged copy.
        index : int
            Frame number (drives temporally varying degradations).
        seed : int
            Seed of the random parts (noise); same inputs → same output.
        fps : float
            Frame rate, for degradations defined per second (flicker).

        Returns
        -------
        numpy.ndarray
            The degraded frame. Encoder degradations return a copy.
        """
        frame = check_frame(frame)
        s = check_strength(strength)
        if s == 0.0 or self.frame_fn is None:
            return frame.copy()
        return self.frame_fn(frame, s, int(index), int(seed), float(fps))

    def apply_all(
        self, frames: Iterable[np.ndarray], strength: float, *, seed: int = 0, fps: float = 25.0
    ) -> Iterator[np.ndarray]:
        """Lazily degrade a frame sequence (frame ``i`` gets ``index=i``)."""
        check_strength(strength)
        for i, frame in enumerate(frames):
            yield self.apply(frame, strength, index=i, seed=seed, fps=fps)

    def crf(self, strength: float, codec: str = "libx264") -> float | None:
        """The encoder CRF this degradation asks for, or None for frame degradations."""
        if self.encoder_fn is None:
            return None
        return self.encoder_fn(check_strength(strength), codec)


def _under_exposure(frame: np.ndarray, s: float, index: int, seed: int, fps: float) -> np.ndarray:
    gain = 1.0 - 0.6 * s
    gamma = 1.0 + 0.8 * s
    lut = np.rint(255.0 * (gain * np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return np.take(lut, frame)


NOISE_SIGMA_MAX = 30.0  # 8-bit code values at strength 1


def _noise(frame: np.ndarray, s: float, index: int, seed: int, fps: float) -> np.ndarray:
    rng = np.random.default_rng((seed & 0xFFFFFFFF, 0x6E6F6973, index))
    noisy = rng.standard_normal(frame.shape, dtype=np.float32)
    noisy *= np.float32(NOISE_SIGMA_MAX * s)
    noisy += frame
    return _to_uint8(noisy)


BLUR_SIGMA_MAX = 8.0  # pixels at 720p (scaled with the frame height) at strength 1


def _blur(frame: np.ndarray, s: float, index: int, seed: int, fps: float) -> np.ndarray:
    sigma = BLUR_SIGMA_MAX * s * frame.shape[0] / 720.0
    return _to_uint8(gaussian_blur(frame, sigma))


def _flicker(frame: np.ndarray, s: float, index: int, seed: int, fps: float) -> np.ndarray:
    # A ~4.3 Hz beat (mains lighting vs shutter) with a small random per-frame jitter.
    rng = np.random.default_rng((seed & 0xFFFFFFFF, 0x666C6B72, index))
    osc = math.sin(2.0 * math.pi * 4.3 * index / fps) + 0.3 * float(rng.uniform(-1.0, 1.0))
    gain = 1.0 + 0.35 * s * osc / 1.3
    lut = np.clip(np.rint(np.arange(256) * gain), 0, 255).astype(np.uint8)
    return np.take(lut, frame)


def _enhance(frame: np.ndarray, s: float, index: int, seed: int, fps: float) -> np.ndarray:
    x = frame.astype(np.float32)
    # Unsharp mask on a small radius.
    sigma = max(0.6, 1.5 * frame.shape[0] / 720.0)
    x += np.float32(0.9 * s) * (x - gaussian_blur(frame, sigma))
    # Contrast about mid-grey, then saturation about the luma.
    x -= 128.0
    x *= np.float32(1.0 + 0.12 * s)
    x += 128.0
    luma = x @ np.asarray([0.2126, 0.7152, 0.0722], np.float32)
    x -= luma[..., None]
    x *= np.float32(1.0 + 0.25 * s)
    x += luma[..., None]
    return _to_uint8(x)


def _compression_crf(s: float, codec: str) -> float:
    lo, hi = CRF_RANGE.get(codec, CRF_RANGE["libx264"])
    return lo + s * (hi - lo)


#: The registry of degradations, keyed by name.
DEGRADATIONS: dict[str, Degradation] = {
    d.name: d
    for d in (
        Degradation(
            "under_exposure",
            "Gain and gamma darkening through a LUT (gain 1 - 0.6 s, gamma 1 + 0.8 s): dark picture, crushed shadows.",
            frame_fn=_under_exposure,
        ),
        Degradation(
            "noise",
            f"Additive Gaussian sensor noise, independent per pixel, channel and frame; "
            f"sigma = {NOISE_SIGMA_MAX:g} s (8-bit code values).",
            frame_fn=_noise,
        ),
        Degradation(
            "blur",
            f"Separable Gaussian blur, sigma = {BLUR_SIGMA_MAX:g} s px at 720p (scaled with height).",
            frame_fn=_blur,
        ),
        Degradation(
            "compression",
            "Encoder setting: CRF raised linearly from the clean value (18 for x264, 24 for VP9) "
            "at s = 0 to the codec maximum (51 / 63) at s = 1.",
            encoder_fn=_compression_crf,
        ),
        Degradation(
            "flicker",
            "Per-frame brightness oscillation (~4.3 Hz plus jitter), up to ±35 % gain at s = 1.",
            frame_fn=_flicker,
        ),
        Degradation(
            "enhance",
            "Mild enhancement: unsharp mask (amount 0.9 s), contrast +12 s %, saturation +25 s %.",
            frame_fn=_enhance,
            worse_with_strength=False,
        ),
    )
}
