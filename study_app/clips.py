"""Synthetic test video with a known quality order.

Used by the demo study, by the test-suite and by the objective-scorer tests.
Everything here is pure NumPy + PyAV:

* :func:`source_frames` — a clean, deterministic synthetic source (panning
  procedural texture, colour gradients, a face-like sprite that blinks and
  talks, a moving zone-plate detail patch). Each *content* (``"c1"``,
  ``"c2"``, … or an integer index) has its own texture, palette, motion and
  skin tone.
* :data:`DEGRADATIONS` — named, strength-parameterised degradations
  (``under_exposure``, ``noise``, ``blur``, ``compression``, ``flicker``,
  ``enhance``). ``strength`` lies in ``[0, 1]``; 0 is the identity and larger
  is worse, except for ``enhance`` where larger is a stronger (still mild)
  enhancement. ``compression`` is an encoder setting, not a frame filter.
* :func:`write_clip` / :func:`probe` / :func:`read_frames` — encode (H.264 in
  MP4, VP9 in WebM, a keyframe every second so browsers seek fast), inspect
  and decode clips. Files are written to a temporary sibling and renamed, so a
  clip path never holds a half-written file.
* :func:`make_clip` / :func:`generate_demo` — one clip from a condition spec,
  and the whole demo set (``<out>/<content>/<condition>.mp4``), reusing
  valid clips that already exist.

Colour handling: frames are RGB ``uint8``; they are converted to Y'CbCr with
the BT.709 matrix in limited ("TV") range and the stream is tagged BT.709, which
is what browsers assume for HD video. :func:`read_frames` converts back with
the same matrix, so encode → decode round-trips are colour-faithful.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = [
    "DEGRADATIONS",
    "DEMO_CONDITIONS",
    "EXPECTED_ORDER",
    "REFERENCE_CONDITION",
    "ClipInfo",
    "Degradation",
    "generate_demo",
    "keyframe_interval",
    "make_clip",
    "normalize_condition",
    "probe",
    "read_frames",
    "source_frames",
    "write_clip",
]

# --------------------------------------------------------------------------------------
# Source content
# --------------------------------------------------------------------------------------

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class _Style:
    """Look and motion of one content family (colours are RGB in [0, 1])."""

    texture: str  # "clouds" | "grain" | "foliage" | "bricks"
    palette_a: tuple[Colour, ...]
    palette_b: tuple[Colour, ...]
    sky: Colour  # frame-fixed gradient from the top
    side: Colour  # frame-fixed gradient from the left
    velocity: tuple[float, float]  # background pan, px/s at 720p (x, y)
    skin: Colour
    hair: Colour
    iris: Colour
    face_centre: tuple[float, float]  # relative (x, y)
    face_path: tuple[float, float, float]  # relative amplitude (x, y), period in s
    plate_centre: tuple[float, float]  # relative (x, y)


_STYLES: tuple[_Style, ...] = (
    _Style(  # c1: warm clouds, slow pan right, light skin
        texture="clouds",
        palette_a=((0.18, 0.08, 0.25), (0.55, 0.15, 0.25), (0.95, 0.45, 0.15), (1.0, 0.86, 0.55)),
        palette_b=((0.10, 0.05, 0.30), (0.30, 0.20, 0.60), (0.80, 0.50, 0.70), (1.0, 0.90, 0.90)),
        sky=(1.0, 0.6, 0.2),
        side=(0.6, 0.2, 0.6),
        velocity=(60.0, 0.0),
        skin=(0.96, 0.80, 0.69),
        hair=(0.35, 0.20, 0.10),
        iris=(0.25, 0.45, 0.70),
        face_centre=(0.32, 0.52),
        face_path=(0.04, 0.02, 4.0),
        plate_centre=(0.78, 0.28),
    ),
    _Style(  # c2: cool wood/water grain, diagonal pan, dark skin
        texture="grain",
        palette_a=((0.02, 0.10, 0.25), (0.0, 0.45, 0.50), (0.40, 0.80, 0.80), (0.90, 0.97, 1.0)),
        palette_b=((0.05, 0.05, 0.20), (0.20, 0.30, 0.60), (0.50, 0.60, 0.90), (0.90, 0.90, 1.0)),
        sky=(0.5, 0.8, 1.0),
        side=(0.0, 0.3, 0.6),
        velocity=(40.0, 25.0),
        skin=(0.55, 0.36, 0.24),
        hair=(0.05, 0.04, 0.04),
        iris=(0.25, 0.15, 0.08),
        face_centre=(0.70, 0.50),
        face_path=(0.02, 0.04, 3.0),
        plate_centre=(0.24, 0.66),
    ),
    _Style(  # c3: foliage, vertical pan, medium skin, face walks across
        texture="foliage",
        palette_a=((0.02, 0.12, 0.03), (0.10, 0.35, 0.05), (0.45, 0.65, 0.10), (0.85, 0.90, 0.40)),
        palette_b=((0.15, 0.08, 0.02), (0.45, 0.30, 0.05), (0.75, 0.55, 0.10), (0.95, 0.85, 0.50)),
        sky=(1.0, 1.0, 0.6),
        side=(0.2, 0.5, 0.1),
        velocity=(0.0, -70.0),
        skin=(0.78, 0.57, 0.42),
        hair=(0.15, 0.10, 0.08),
        iris=(0.30, 0.45, 0.20),
        face_centre=(0.50, 0.56),
        face_path=(0.18, 0.02, 5.0),
        plate_centre=(0.50, 0.17),
    ),
    _Style(  # c4: bricks and stones, fast pan left, tan skin, circling face
        texture="bricks",
        palette_a=((0.30, 0.10, 0.07), (0.55, 0.22, 0.14), (0.75, 0.40, 0.28), (0.80, 0.76, 0.70)),
        palette_b=((0.25, 0.27, 0.30), (0.45, 0.47, 0.50), (0.70, 0.70, 0.72), (0.85, 0.85, 0.85)),
        sky=(0.9, 0.85, 0.8),
        side=(0.3, 0.3, 0.6),
        velocity=(-90.0, 15.0),
        skin=(0.87, 0.68, 0.52),
        hair=(0.50, 0.50, 0.52),
        iris=(0.35, 0.25, 0.15),
        face_centre=(0.42, 0.48),
        face_path=(0.05, 0.05, 3.5),
        plate_centre=(0.82, 0.72),
    ),
)

_CHANNEL_ORDERS = ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2))
_TEXTURE_MAX = 200  # the canvas uses [0, 200] ...
_GRADIENT_MAX = 55  # ... and the frame-fixed gradient adds up to 55, so no overflow


def _content_key(content: str | int) -> tuple[str, int]:
    """Normalise a content to ``(name, index)``; ``0`` ≡ ``"c1"``, ``1`` ≡ ``"c2"`` …"""
    if isinstance(content, bool) or not isinstance(content, (str, int, np.integer)):
        raise TypeError(f"content must be a str or an int, not {type(content).__name__}")
    if isinstance(content, (int, np.integer)):
        if content < 0:
            raise ValueError(f"content index must be >= 0, got {content}")
        return f"c{int(content) + 1}", int(content)
    if not content:
        raise ValueError("content name must not be empty")
    m = re.fullmatch(r"c(\d+)", content)
    if m and int(m.group(1)) >= 1:
        return content, int(m.group(1)) - 1
    return content, zlib.crc32(content.encode("utf-8"))


def _content_seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _spectral_noise(
    rng: np.random.Generator, h: int, w: int, alpha: float, stretch: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """Periodic (period ``h`` × ``w``) Gaussian noise with a ``1/f**alpha`` amplitude spectrum.

    Frequencies are measured in cycles per frame height, so the look does not
    depend on the resolution. ``stretch`` scales the (y, x) frequencies, making
    the texture anisotropic. Returns zero-mean, unit-variance ``float32``.
    """
    white = rng.standard_normal((h, w), dtype=np.float32)
    fy = (np.fft.fftfreq(h) * h * stretch[0])[:, None]
    fx = (np.fft.rfftfreq(w) * h * stretch[1])[None, :]
    f = np.sqrt(fy * fy + fx * fx).astype(np.float32)
    f[0, 0] = 1.0
    amp = f ** np.float32(-alpha)
    amp[0, 0] = 0.0  # float32 throughout: complex64 FFTs are about twice as fast
    field = np.fft.irfft2(np.fft.rfft2(white) * amp, s=(h, w)).astype(np.float32)
    std = float(field.std())
    return field / std if std > 0 else field


def _smooth_field(rng: np.random.Generator, h: int, w: int, n_waves: int = 6) -> np.ndarray:
    """A very smooth periodic field in [0, 1]: a few random low-frequency plane waves.

    Each wave ``cos(2π(kx x / w + ky y / h) + φ)`` is expanded into two outer
    products, so the cost is a handful of ``(h, w)`` operations, no FFT.
    """
    yy = np.arange(h, dtype=np.float64) / h
    xx = np.arange(w, dtype=np.float64) / w
    field = np.zeros((h, w), np.float32)
    for _ in range(n_waves):
        ky, kx = (int(k) for k in rng.integers(-2, 3, size=2))
        if ky == 0 and kx == 0:
            kx = 1
        phase = float(rng.uniform(0.0, 2.0 * np.pi))
        ay, ax = 2.0 * np.pi * ky * yy + phase, 2.0 * np.pi * kx * xx
        field += np.outer(np.cos(ay), np.cos(ax)).astype(np.float32)
        field -= np.outer(np.sin(ay), np.sin(ax)).astype(np.float32)
    field /= max(float(np.abs(field).max()), 1e-6)
    return np.clip(0.5 + 0.5 * field, 0.0, 1.0)


def _palette(t: np.ndarray, stops: Sequence[Colour]) -> np.ndarray:
    """Map ``t`` in [0, 1] through evenly spaced colour stops → ``(*t.shape, 3)`` float32."""
    xs = np.linspace(0.0, 1.0, len(stops))
    cols = np.asarray(stops, dtype=np.float32)
    return np.stack([np.interp(t, xs, cols[:, c]).astype(np.float32) for c in range(3)], axis=-1)


def _texture(style: _Style, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The periodic luminance-like texture value in [0, 1], shape ``(h, w)``."""
    yy = (np.arange(h, dtype=np.float32) / h)[:, None]
    xx = (np.arange(w, dtype=np.float32) / w)[None, :]
    if style.texture == "clouds":
        z = _spectral_noise(rng, h, w, 1.05)
        t = 0.5 + 0.22 * z
    elif style.texture == "grain":
        warp = _spectral_noise(rng, h, w, 1.6, stretch=(1.0, 0.35))
        fine = _spectral_noise(rng, h, w, 0.6, stretch=(3.0, 0.5))
        t = 0.5 + 0.4 * np.sin(2 * np.pi * 9 * yy + 2.2 * warp) + 0.08 * fine
    elif style.texture == "foliage":
        ridged = 1.0 - np.abs(_spectral_noise(rng, h, w, 0.85))
        blobs = _spectral_noise(rng, h, w, 1.3)
        t = 0.25 * ridged + 0.5 + 0.18 * blobs
    elif style.texture == "bricks":
        rows = 8
        cols = max(2, round(w / (2.2 * h / rows)))
        v = yy * rows
        row = np.floor(v).astype(np.int64)
        u = xx * cols + 0.5 * (row % 2)
        col = np.floor(u).astype(np.int64) % cols
        tone = rng.uniform(0.05, 0.7, size=(rows, cols)).astype(np.float32)
        # Mortar joints 7 % of a brick's height thick, in both directions.
        mortar = ((v - row) < 0.07) | ((u - np.floor(u)) < 0.07 * (h / rows) / (w / cols))
        fine = _spectral_noise(rng, h, w, 0.7)
        t = np.where(mortar, 0.97 + 0.02 * fine, tone[row % rows, col] + 0.06 * fine)
    else:  # pragma: no cover - the styles above are the only ones
        raise ValueError(f"unknown texture {style.texture!r}")
    return np.clip(t, 0.0, 1.0).astype(np.float32)


def _soft_ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Anti-aliased coverage (0..1) of an axis-aligned ellipse on a pixel grid."""
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return np.clip(0.5 - (r - 1.0) * min(ax, ay), 0.0, 1.0)


def _face_sprites(style: _Style, face_h: float) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, int]:
    """Four pre-blended face sprites: (eyes open/closed) × (mouth closed/open).

    Returns ``[(premultiplied_rgb_uint16, inverse_alpha_uint16), …]`` and the
    sprite height and width. Blend with
    ``(premult + background * inv_alpha) >> 8``.
    """
    b = face_h / 2.0  # vertical semi-axis of the face
    a = 0.78 * b  # horizontal semi-axis
    sh = math.ceil(2.5 * b) + 2
    sw = math.ceil(2.4 * a) + 2
    cy, cx = sh / 2.0, sw / 2.0
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32) + 0.5

    skin = np.asarray(style.skin, np.float32)
    hair = np.asarray(style.hair, np.float32)
    lips = np.asarray((0.70, 0.25, 0.28), np.float32) * (0.6 + 0.4 * skin.mean())

    # Hair: a cap behind the upper half of the face.
    hair_a = _soft_ellipse(x, y, cx, cy - 0.10 * b, 1.10 * a, 1.05 * b)
    hair_a *= np.clip((cy + 0.25 * b - y) / (0.1 * b), 0.0, 1.0)
    face_a = _soft_ellipse(x, y, cx, cy + 0.05 * b, a, b)
    # Shading: brighter centre, darker rim → a rounded look.
    rr = ((x - cx) / a) ** 2 + ((y - cy - 0.05 * b) / b) ** 2
    shade = (1.06 - 0.28 * np.clip(rr, 0.0, 1.0))[..., None]

    def paint(rgb: np.ndarray, colour: np.ndarray, cover: np.ndarray) -> None:
        rgb += (colour - rgb) * cover[..., None]

    base = np.zeros((sh, sw, 3), np.float32)
    paint(base, hair, hair_a)
    paint(base, np.clip(skin * shade, 0.0, 1.0), face_a)
    # Cheeks, nose shadow, eyebrows.
    for side in (-1.0, 1.0):
        paint(
            base,
            np.clip(skin * (0.9, 0.75, 0.75), 0, 1),
            0.35 * _soft_ellipse(x, y, cx + side * 0.5 * a, cy + 0.25 * b, 0.2 * a, 0.12 * b),
        )
        paint(base, hair * 0.8, _soft_ellipse(x, y, cx + side * 0.40 * a, cy - 0.36 * b, 0.24 * a, 0.045 * b))
    paint(base, skin * 0.78, 0.6 * _soft_ellipse(x, y, cx, cy + 0.10 * b, 0.09 * a, 0.16 * b))

    alpha = 1.0 - (1.0 - hair_a) * (1.0 - face_a)
    sprites: list[tuple[np.ndarray, np.ndarray]] = []
    for eyes_open in (True, False):
        eyes = base.copy()
        for side in (-1.0, 1.0):
            ex, ey = cx + side * 0.40 * a, cy - 0.18 * b
            if eyes_open:
                paint(eyes, np.ones(3, np.float32), _soft_ellipse(x, y, ex, ey, 0.21 * a, 0.095 * b))
                paint(eyes, np.asarray(style.iris, np.float32), _soft_ellipse(x, y, ex, ey, 0.085 * b, 0.085 * b))
                paint(eyes, np.zeros(3, np.float32), _soft_ellipse(x, y, ex, ey, 0.038 * b, 0.038 * b))
                paint(
                    eyes,
                    np.ones(3, np.float32),
                    _soft_ellipse(x, y, ex + 0.02 * b, ey - 0.025 * b, 0.014 * b, 0.014 * b),
                )
            else:
                paint(eyes, skin * 0.55, _soft_ellipse(x, y, ex, ey + 0.01 * b, 0.21 * a, 0.02 * b))
        for mouth_open in (False, True):
            rgb = eyes.copy()
            my = cy + 0.50 * b
            if mouth_open:
                paint(rgb, lips, _soft_ellipse(x, y, cx, my, 0.34 * a, 0.13 * b))
                paint(rgb, np.asarray((0.18, 0.03, 0.05), np.float32), _soft_ellipse(x, y, cx, my, 0.26 * a, 0.075 * b))
            else:
                # A smile: the lower part of a thin ellipse.
                smile = _soft_ellipse(x, y, cx, my - 0.02 * b, 0.32 * a, 0.07 * b)
                smile *= 1.0 - _soft_ellipse(x, y, cx, my - 0.06 * b, 0.34 * a, 0.07 * b)
                paint(rgb, lips * 0.8, smile)
            a8 = np.rint(alpha * 256.0).astype(np.uint16)[..., None]
            rgb8 = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint16)
            sprites.append((rgb8 * a8, (256 - a8).astype(np.uint16)))
    return sprites, sh, sw


def _blend(frame: np.ndarray, top: int, left: int, premult: np.ndarray, inv_alpha: np.ndarray) -> None:
    """Alpha-blend a pre-multiplied sprite into ``frame`` in place, clipped to the frame."""
    h, w = frame.shape[:2]
    sh, sw = inv_alpha.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + sh, h), min(left + sw, w)
    if y0 >= y1 or x0 >= x1:
        return
    sy, sx = slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)
    region = frame[y0:y1, x0:x1]
    mixed = region.astype(np.uint16) * inv_alpha[sy, sx]
    mixed += premult[sy, sx]
    mixed >>= 8
    region[...] = mixed


def source_frames(
    content: str | int,
    width: int = 1280,
    height: int = 720,
    n_frames: int = 125,
    fps: float = 25,
    seed: int | None = None,
) -> Iterator[np.ndarray]:
    """Generate a clean synthetic source clip.

    The picture is a procedural texture (clouds, wood grain, foliage or
    bricks, depending on the content) that pans at a constant speed, a
    frame-fixed colour gradient, a face-like sprite (skin-tone ellipse with
    hair, eyes that blink and a mouth that talks) moving on a smooth path, and
    a zone-plate patch whose rings drift (fine detail that blur and
    compression destroy first).

    Parameters
    ----------
    content : str or int
        ``"c1"``, ``"c2"``, … (or the 0-based index: ``0`` is ``"c1"``). The
        first four contents have hand-picked, clearly different palettes,
        textures and motion; later ones reuse those families with permuted
        colours and mirrored layout. Any other string is hashed to a content.
    width, height : int
        Frame size in pixels (at least 16 × 16).
    n_frames : int
        Number of frames to yield.
    fps : float
        Frame rate; motion is defined per second, so it looks the same at any
        rate.
    seed : int, optional
        Seed of the random texture; defaults to a hash of the content name.

    Yields
    ------
    numpy.ndarray
        ``(height, width, 3)`` RGB ``uint8`` frames; each is a new array.

    Notes
    -----
    Deterministic: the same arguments always give the same frames. Setup
    (texture synthesis) costs a few FFTs; after that each frame is a crop of a
    pre-computed periodic canvas plus two small sprite blends.
    """
    name, index = _content_key(content)
    width, height, n_frames = int(width), int(height), int(n_frames)
    if width < 16 or height < 16:
        raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    seed = _content_seed(name) if seed is None else int(seed)
    return _source_iter(index, width, height, n_frames, float(fps), seed)


def _source_iter(index: int, w: int, h: int, n_frames: int, fps: float, seed: int) -> Iterator[np.ndarray]:
    style = _STYLES[index % len(_STYLES)]
    variant = index // len(_STYLES)
    order = list(_CHANNEL_ORDERS[variant % len(_CHANNEL_ORDERS)])
    mirror = variant % 2 == 1
    rng = np.random.default_rng(seed)
    scale = h / 720.0

    # Periodic canvas (period h × w), tiled 2 × 2 so that any crop offset works.
    t = _texture(style, rng, h, w)
    mix = _smooth_field(rng, h, w)
    # Colour = palette_a(t) blended towards palette_b(t) by the smooth `mix` field, through
    # one 2-D lookup table (64 mix levels × 1024 texture levels) instead of per-pixel maths.
    n_mix, n_t = 64, 1024
    levels = np.linspace(0.0, 1.0, n_t)
    weights = np.linspace(0.0, 1.0, n_mix, dtype=np.float32)[:, None, None]
    lut = _palette(levels, style.palette_a)[None] * (1.0 - weights) + _palette(levels, style.palette_b)[None] * weights
    lut = np.rint(np.clip(lut[..., order], 0.0, 1.0) * _TEXTURE_MAX).astype(np.uint8).reshape(-1, 3)
    idx = np.rint(mix * (n_mix - 1)).astype(np.int32) * n_t + np.rint(t * (n_t - 1)).astype(np.int32)
    canvas = np.tile(np.take(lut, idx, axis=0), (2, 2, 1))
    del t, mix, idx

    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    if mirror:
        xx = xx[:, ::-1]
    sky = np.asarray(style.sky, np.float32)[order]
    side = np.asarray(style.side, np.float32)[order]
    gradient = np.rint(_GRADIENT_MAX * (0.7 * (1.0 - yy) ** 2 * sky + 0.3 * (1.0 - xx) * side)).astype(np.uint8)

    # Zone plate: local frequency grows linearly to 0.25 cycles/px at the rim.
    pr = max(4, round(0.11 * h))
    py, px = np.mgrid[-pr : pr + 1, -pr : pr + 1].astype(np.float32)
    r2 = px * px + py * py
    plate_phase = (np.pi * 0.25 / pr) * r2
    plate_alpha = np.clip(pr - 0.5 - np.sqrt(r2), 0.0, 1.0)
    plate_inv = np.rint(256.0 * (1.0 - plate_alpha)).astype(np.uint16)[..., None]
    plate_lo = np.asarray(style.palette_a[0], np.float32)[order] * 255.0
    plate_hi = np.asarray(style.palette_a[-1], np.float32)[order] * 255.0
    plate_a256 = (256.0 * plate_alpha)[..., None]
    pcx, pcy = style.plate_centre
    if mirror:
        pcx = 1.0 - pcx
    plate_top, plate_left = round(pcy * h) - pr, round(pcx * w) - pr

    sprites, sh, sw = _face_sprites(style, 0.40 * h)
    fcx, fcy = style.face_centre
    ax, ay, period = style.face_path
    if mirror:
        fcx, ax = 1.0 - fcx, -ax
    phase0 = float(rng.uniform(0.0, 2 * np.pi))
    blink_every = float(rng.uniform(2.2, 3.4))
    blink_at = float(rng.uniform(0.3, 1.5))
    vx, vy = style.velocity
    if mirror:
        vx = -vx

    for i in range(n_frames):
        ts = i / fps
        oy = round(vy * scale * ts) % h
        ox = round(vx * scale * ts) % w
        frame = np.add(canvas[oy : oy + h, ox : ox + w], gradient)

        wave = 0.5 + 0.5 * np.cos(plate_phase - 2.0 * np.pi * 1.5 * ts)[..., None]
        rgb = plate_lo + (plate_hi - plate_lo) * wave
        premult = np.rint(rgb * plate_a256).astype(np.uint16)
        _blend(frame, plate_top, plate_left, premult, plate_inv)

        ang = 2.0 * np.pi * ts / period + phase0
        cx = (fcx + ax * np.sin(ang)) * w
        cy = (fcy + ay * np.sin(2.0 * ang if style.texture != "bricks" else ang + np.pi / 2)) * h
        blinking = ((ts - blink_at) % blink_every) < 0.14
        talking = np.sin(2.0 * np.pi * 2.7 * ts + phase0) > 0.2 and (ts % 3.0) < 2.0
        premult, inv = sprites[2 * int(blinking) + int(talking)]
        _blend(frame, round(cy - sh / 2), round(cx - sw / 2), premult, inv)
        yield frame


# --------------------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------------------


def _check_strength(strength: float) -> float:
    s = float(strength)
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise ValueError(f"strength must lie in [0, 1], got {strength!r}")
    return s


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", None)
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got shape {shape} dtype {dtype}")
    return frame


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
        frame = _check_frame(frame)
        s = _check_strength(strength)
        if s == 0.0 or self.frame_fn is None:
            return frame.copy()
        return self.frame_fn(frame, s, int(index), int(seed), float(fps))

    def apply_all(
        self, frames: Iterable[np.ndarray], strength: float, *, seed: int = 0, fps: float = 25.0
    ) -> Iterator[np.ndarray]:
        """Lazily degrade a frame sequence (frame ``i`` gets ``index=i``)."""
        _check_strength(strength)
        for i, frame in enumerate(frames):
            yield self.apply(frame, strength, index=i, seed=seed, fps=fps)

    def crf(self, strength: float, codec: str = "libx264") -> float | None:
        """The encoder CRF this degradation asks for, or None for frame degradations."""
        if self.encoder_fn is None:
            return None
        return self.encoder_fn(_check_strength(strength), codec)


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


_CRF_RANGE = {"libx264": (18.0, 51.0), "libvpx-vp9": (24.0, 63.0)}


def _compression_crf(s: float, codec: str) -> float:
    lo, hi = _CRF_RANGE.get(codec, _CRF_RANGE["libx264"])
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

#: A condition spec: None / "source" (clean), a :data:`DEMO_CONDITIONS` name,
#: ``{"degradation": name, "strength": s}``, or a list of such dicts (applied in order).
ConditionSpec = None | str | Mapping[str, Any] | Sequence[Mapping[str, Any]]

REFERENCE_CONDITION = "source"

#: The demo's conditions (4 contents × these 6 = 24 clips). Strengths are chosen
#: so that every degradation is clearly visible at 1280×720 and the conditions
#: fall in the order of :data:`EXPECTED_ORDER`.
DEMO_CONDITIONS: dict[str, dict[str, Any] | None] = {
    "source": None,
    "enhanced": {"degradation": "enhance", "strength": 0.5},
    "noisy": {"degradation": "noise", "strength": 0.25},
    "blurred": {"degradation": "blur", "strength": 0.45},
    "dark": {"degradation": "under_exposure", "strength": 0.75},
    "compressed": {"degradation": "compression", "strength": 0.8},
}

#: Demo conditions from best to worst. The mild enhancement is designed to be
#: (slightly) preferred over the source; the degradations get progressively more
#: severe: mild noise, moderate blur, strong under-exposure, very heavy compression.
EXPECTED_ORDER: tuple[str, ...] = ("enhanced", "source", "noisy", "blurred", "dark", "compressed")


def normalize_condition(spec: ConditionSpec) -> list[tuple[Degradation, float]]:
    """Turn a condition spec into a list of ``(degradation, strength)`` steps.

    Parameters
    ----------
    spec : None, str, mapping or sequence of mappings
        ``None``, ``"source"`` or ``"reference"`` → no steps; a name in
        :data:`DEMO_CONDITIONS` → its spec; a degradation name → that
        degradation at strength 0.5; ``{"degradation": name, "strength": s}``
        (strength defaults to 0.5); or a list of such mappings.

    Returns
    -------
    list of (Degradation, float)

    Raises
    ------
    ValueError
        Unknown names, strengths outside ``[0, 1]``, unknown keys, or more than
        one ``compression`` step.
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec in ("source", "reference"):
            return []
        if spec in DEMO_CONDITIONS:
            return normalize_condition(DEMO_CONDITIONS[spec])
        if spec in DEGRADATIONS:
            return [(DEGRADATIONS[spec], 0.5)]
        raise ValueError(f"unknown condition {spec!r}; known: {sorted({*DEMO_CONDITIONS, *DEGRADATIONS})}")
    items: Sequence[Mapping[str, Any]] = [spec] if isinstance(spec, Mapping) else list(spec)
    steps: list[tuple[Degradation, float]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"a condition step must be a mapping, got {item!r}")
        extra = set(item) - {"degradation", "strength"}
        if extra:
            raise ValueError(f"unknown keys in condition spec: {sorted(extra)}")
        name = item.get("degradation")
        if name in (None, "source", "reference"):
            continue
        if name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {name!r}; known: {sorted(DEGRADATIONS)}")
        steps.append((DEGRADATIONS[name], _check_strength(item.get("strength", 0.5))))
    if sum(d.is_encoder_setting for d, _ in steps) > 1:
        raise ValueError("at most one compression step per condition")
    return steps


# --------------------------------------------------------------------------------------
# Encoding, probing, decoding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipInfo:
    """What a clip file holds.

    Attributes
    ----------
    width, height : int
        Frame size in pixels.
    fps : float
        Frame rate.
    duration_s : float
        Duration in seconds.
    n_frames : int
        Number of frames.
    codec : str
        Codec name as FFmpeg reports it (``"h264"``, ``"vp9"``).
    """

    width: int
    height: int
    fps: float
    duration_s: float
    n_frames: int
    codec: str


_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_CODEC_NAMES = {"libx264": "h264", "libvpx-vp9": "vp9"}
_WEBM_CODECS = {"libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"}


def _rate(fps: float | Fraction) -> Fraction:
    """Frame rate as a fraction; ``29.97`` / ``59.94`` / ``23.976`` mean the NTSC ``n * 1000/1001``."""
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
) -> ClipInfo:
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
    ClipInfo
        :func:`probe` of the written file.

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
    rate = _rate(fps)
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
    return probe(path)


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
    first = _check_frame(first)
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
            arr = _check_frame(arr)
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
    return max(1, math.floor(_rate(fps)))


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


def probe(path: str | os.PathLike[str], *, count_frames: bool = False) -> ClipInfo:
    """Read a clip's size, rate, duration, frame count and codec.

    Uses container/stream metadata where it is present (MP4 stores the frame
    count and duration); otherwise — or with ``count_frames=True`` — counts
    frames by demuxing packets, which reads the file but decodes nothing.

    Parameters
    ----------
    path : path-like
        The clip.
    count_frames : bool
        Always count packets (also verifies the file can be read to its end).

    Returns
    -------
    ClipInfo

    Raises
    ------
    ValueError
        The file has no video stream or cannot be read (``av`` errors are
        re-raised as ``ValueError``).
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            cc = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            n_frames = int(stream.frames or 0)
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            if count_frames or n_frames <= 0:
                counted = 0
                for packet in container.demux(stream):
                    if packet.size:
                        counted += 1
                if count_frames and n_frames > 0 and counted != n_frames:
                    raise ValueError(f"{path}: header says {n_frames} frames, {counted} readable")
                n_frames = counted
            if duration <= 0.0:
                duration = n_frames / fps if fps else (container.duration or 0) / av.time_base
            return ClipInfo(
                width=int(cc.width),
                height=int(cc.height),
                fps=fps,
                duration_s=duration,
                n_frames=n_frames,
                codec=str(cc.name),
            )
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{path}: not a readable clip ({exc})") from exc


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode a clip to RGB ``uint8`` frames (BT.709 aware, the inverse of :func:`write_clip`).

    Yields
    ------
    numpy.ndarray
        ``(H, W, 3)`` RGB ``uint8`` frames in presentation order.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            space = frame.colorspace if frame.colorspace in (1, 5, 6, 9) else 1
            rng = frame.color_range if frame.color_range in (1, 2) else 1
            yield frame.to_ndarray(
                format="rgb24", src_colorspace=space, src_color_range=rng, dst_colorspace=space, interpolation="BICUBIC"
            )


# --------------------------------------------------------------------------------------
# Clips and the demo set
# --------------------------------------------------------------------------------------


def _clip_frames(
    content: str | int,
    steps: Sequence[tuple[Degradation, float]],
    width: int,
    height: int,
    n_frames: int,
    fps: float,
    seed: int | None,
) -> Iterator[np.ndarray]:
    name, _ = _content_key(content)
    base_seed = _content_seed(name) if seed is None else int(seed)
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
) -> ClipInfo:
    """Generate one clip: a content under a condition, encoded to ``path``.

    Parameters
    ----------
    path : path-like
        Output clip (``.mp4`` for H.264, ``.webm`` for VP9).
    content : str or int
        See :func:`source_frames`.
    condition_spec : condition spec
        See :func:`normalize_condition`; e.g. ``None``, ``"source"``,
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
    ClipInfo
        Of the written file.
    """
    steps = normalize_condition(condition_spec)
    n_frames = round(float(seconds) * float(fps))
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame (seconds={seconds}, fps={fps})")
    clean = _CRF_RANGE.get(codec, _CRF_RANGE["libx264"])[0]
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
        info = probe(path, count_frames=True)
    except ValueError:
        return False
    return (
        info.width == width
        and info.height == height
        and info.n_frames == n_frames
        and abs(info.fps - fps) < 1e-3
        and info.codec == _CODEC_NAMES.get(codec, codec)
        # Clips from before keyframes were set every second have one keyframe in 5 s: redo them.
        and _keyframes_every_second(path, fps)
    )


def _keyframes_every_second(path: Path, fps: float) -> bool:
    """True when the clip starts on a keyframe and keyframes are at most :func:`keyframe_interval` frames apart."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packets = sorted((p.pts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None)
            time_base = stream.time_base
    except (av.FFmpegError, OSError, IndexError):
        return False
    if not packets or not packets[0][1] or time_base is None:
        return False

    def frame(pts: int) -> int:
        return round((pts - packets[0][0]) * time_base * fps)

    # The end of the clip counts as a keyframe: the frames after the last one must be close to it too.
    marks = [frame(pts) for pts, key in packets if key] + [frame(packets[-1][0]) + 1]
    return all(b - a <= keyframe_interval(fps) for a, b in pairwise(marks))


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
        Content names (see :func:`source_frames`).
    workers : int
        Parallel encoder processes (1 = in this process).
    conditions : mapping, optional
        Condition name → spec; defaults to :data:`DEMO_CONDITIONS` (all six).
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
    fps_exact = float(_rate(fps))
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
