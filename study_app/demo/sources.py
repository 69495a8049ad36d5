"""Synthetic source content of the demo: clean, deterministic clips with a known look.

:func:`source_frames` yields the frames of one *content* (``"c1"``, ``"c2"``, … or an
integer index): a panning procedural texture (clouds, wood grain, foliage or bricks),
colour gradients, a face-like sprite that blinks and talks, and a moving zone-plate
detail patch. Each content has its own texture, palette, motion and skin tone.
Frames are RGB ``uint8``; everything here is NumPy.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["content_key", "content_seed", "source_frames"]

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


def content_key(content: str | int) -> tuple[str, int]:
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


def content_seed(name: str) -> int:
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
    name, index = content_key(content)
    width, height, n_frames = int(width), int(height), int(n_frames)
    if width < 16 or height < 16:
        raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    seed = content_seed(name) if seed is None else int(seed)
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
