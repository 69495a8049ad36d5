"""The built-in ``handcrafted`` scorer: classic image statistics, CPU only, no weights.

Per stimulus it reads the frame and clip statistics of :mod:`analysis.objective.scorers.features`
(:data:`~analysis.objective.scorers.features.FEATURES`).


Pairwise: ``p = σ(Σ_k w_k (φ_k(A) - φ_k(B)) / s_k)`` with the documented prior weights
:data:`PRIOR` (``calibrated = False``), or a fitted :class:`analysis.objective.head.Head`
(``calibrated = True``). See ``docs/scorers.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..base import N_AUX, PairScore, StrPath, check_aux
from .base import PER_PROCESS, Aux, Features, FeatureScorer, FileMemo, StimulusResult, sampling_tag
from .features import video_features

if TYPE_CHECKING:
    from ..head import Head

#: Scorer version; bump whenever a feature or prior weight changes (it keys the cache).
HANDCRAFTED_VERSION = "1.0"


@dataclass(frozen=True)
class PriorTerm:
    """One term of the uncalibrated pairwise model: ``weight * (φ_A - φ_B) / scale``.

    ``centre`` is a typical value for a decent webcam clip; only the absolute utility
    behind aux a_1 uses it (differences cancel it).
    """

    weight: float
    scale: float
    centre: float
    why: str


#: Prior weights. Scales are "one noticeable step" of each feature, so a weight of ±1
#: means one such step moves p from 0.5 to σ(1) ≈ 0.73; defects have negative weights. Signs follow the challenge's
#: quality factors (PROTOCOL.md §4 / seed §2.1): sharp, clean, well exposed, lively colour.
PRIOR: dict[str, PriorTerm] = {
    "luma_mean": PriorTerm(0.0, 0.1, 0.45, "not monotonic in quality; exposure_error carries it"),
    "dark_clip": PriorTerm(-1.0, 0.05, 0.0, "crushed shadows lose detail (5 % of the frame = one step)"),
    "bright_clip": PriorTerm(-1.0, 0.05, 0.0, "blown highlights lose detail"),
    "contrast": PriorTerm(1.0, 0.03, 0.2, "flat, grey pictures are disliked; gain loss lowers it"),
    "colourfulness": PriorTerm(0.5, 5.0, 30.0, "lively colour is preferred (seed §2.1 'natural colors')"),
    "saturation": PriorTerm(0.0, 0.05, 0.35, "kept for the fitted head; colourfulness covers it"),
    "sharpness": PriorTerm(1.5, 0.15, 2.0, "loss of detail is the main cost of blur and compression"),
    "noise": PriorTerm(-1.0, 2.0, 2.0, "luma noise; mild weight: fine texture also lifts this estimate"),
    "chroma_noise": PriorTerm(-1.0, 1.0, 0.5, "colour noise; texture rarely lives in chroma"),
    "blockiness": PriorTerm(-1.0, 0.01, 0.0, "8-px coding blocks: a 1 % excess step at block edges = step"),
    "flicker": PriorTerm(-2.0, 0.5, 0.0, "frame-to-frame brightness pumping (half a grey level = step)"),
    "exposure_error": PriorTerm(-2.0, 0.05, 0.0, "too dark or too bright overall (seed §2.1 illumination)"),
}

#: What each auxiliary score means (a_1..a_11); all rise with quality except a_4.
AUX_NAMES: tuple[str, ...] = (
    "overall",  # a1 σ(utility) — prior weights, or the fitted head when loaded
    "exposure",  # a2 1 - |luma_mean - 0.45| / 0.45
    "colour_liveliness",  # a3 1 - exp(-colourfulness / 40)
    "noise",  # a4 1 - exp(-(noise / 2 + chroma_noise) / 4)  ← higher means WORSE (challenge convention)
    "sharpness",  # a5 σ((sharpness - 2) / 0.4)
    "contrast",  # a6 min(1, contrast / 0.25)
    "highlights",  # a7 1 - min(1, 5 * bright_clip)
    "shadows",  # a8 1 - min(1, 5 * dark_clip)
    "coding",  # a9 exp(-10 * blockiness)
    "temporal_stability",  # a10 exp(-flicker / 2)
    "saturation_balance",  # a11 1 - min(1, |saturation - 0.35| / 0.35)
)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def prior_vector(features: Mapping[str, float]) -> np.ndarray:
    """Standardised, quality-signed feature vector ``w_k (φ_k - c_k) / s_k`` under :data:`PRIOR`.

    Parameters
    ----------
    features : mapping of str to float
        Must hold every key of :data:`PRIOR`.

    Returns
    -------
    ndarray, shape (len(PRIOR),)
        In :data:`PRIOR` order.

    Raises
    ------
    KeyError
        When a feature is missing.
    """
    return np.array([t.weight * (features[k] - t.centre) / t.scale for k, t in PRIOR.items()])


def prior_utility(features: Mapping[str, float]) -> float:
    """Absolute prior utility of one stimulus: the sum of :func:`prior_vector` (a logit; differences
    give the pairwise logit)."""
    return float(prior_vector(features).sum())


def aux_from_features(features: Mapping[str, float], utility: float) -> tuple[float, ...]:
    """The 11 auxiliary scores (:data:`AUX_NAMES`) from a feature dict and a utility logit.

    Parameters
    ----------
    features : mapping of str to float
        As :func:`video_features` returns.
    utility : float
        Absolute utility logit; a_1 is its sigmoid.

    Returns
    -------
    tuple of float
        11 values in [0, 1]; a_4 (noise) rises as quality falls.
    """
    f = features
    # Each clamp is against float rounding only; the formulas already land in [0, 1].
    values = (
        _sigmoid(utility),
        1.0 - min(1.0, abs(f["luma_mean"] - 0.45) / 0.45),
        1.0 - math.exp(-max(f["colourfulness"], 0.0) / 40.0),
        # Same relative weights as the prior: luma σ counts half, chroma σ fully.
        1.0 - math.exp(-max(0.5 * f["noise"] + f["chroma_noise"], 0.0) / 4.0),
        _sigmoid((f["sharpness"] - 2.0) / 0.4),
        min(1.0, max(f["contrast"], 0.0) / 0.25),
        1.0 - min(1.0, 5.0 * f["bright_clip"]),
        1.0 - min(1.0, 5.0 * f["dark_clip"]),
        math.exp(-10.0 * max(f["blockiness"], 0.0)),
        math.exp(-max(f["flicker"], 0.0) / 2.0),
        1.0 - min(1.0, abs(f["saturation"] - 0.35) / 0.35),
    )
    assert len(values) == N_AUX
    return check_aux(min(max(v, 0.0), 1.0) for v in values)


@dataclass
class HandcraftedScorer(FeatureScorer):
    """CPU scorer from classic image statistics (see the module docstring).

    Parameters
    ----------
    frames
        Evenly spaced frames sampled per stimulus (default 32).
    every
        Sample every n-th frame instead of ``frames``.
    head
        A fitted :class:`~analysis.objective.head.Head` or the path of a saved one. Without
        it the documented prior weights are used and ``calibrated`` is False.
    threads
        Let FFmpeg use its decoder threads.
    memo_size
        Per-process memo of per-file results (by path, size and mtime) so that
        ``compare(a, b)`` followed by ``compare(b, a)`` decodes each file once.
    """

    frames: int = 32
    every: int | None = None
    head: Head | StrPath | None = None
    threads: bool = True
    memo_size: int = 256
    name: str = field(default="handcrafted", init=False)
    _memo: FileMemo = field(default_factory=FileMemo, init=False, repr=False, compare=False, metadata=PER_PROCESS)

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if isinstance(self.head, str | os.PathLike):
            from ..head import Head  # local: the head module is only needed with a fitted head

            self.head = Head.load(Path(self.head))

    @property
    def calibrated(self) -> bool:
        """True once a head fitted on votes is loaded; the prior weights are a guess."""
        return self.head is not None

    @property
    def version(self) -> str:
        """Feature code version, sampling and model: ``1.0+k32+prior`` or ``1.0+n<every>+head.<hash>``."""
        model = "prior" if self.head is None else f"head.{self.head.version}"  # type: ignore[union-attr]
        return f"{HANDCRAFTED_VERSION}+{sampling_tag(self.frames, self.every)}+{model}"

    def stimulus(self, path: StrPath) -> StimulusResult:
        """Features (:data:`~analysis.objective.scorers.features.FEATURES`) and aux (:data:`AUX_NAMES`).

        Decoded once per file and process (memoised by path, size and mtime).
        """
        self._memo.maxsize = self.memo_size

        def analyse() -> StimulusResult:
            feats = video_features(path, frames=self.frames, every=self.every, threads=self.threads)
            return feats, aux_from_features(feats, self.utility(feats))

        return self._memo.get(path, analyse)

    def utility(self, features: Mapping[str, float]) -> float:
        """Absolute utility logit of one stimulus: the fitted head's, else the prior's.

        Parameters
        ----------
        features : mapping of str to float
            As :meth:`features` returns.

        Returns
        -------
        float
        """
        if self.head is not None:
            return float(self.head.utility(features))  # type: ignore[union-attr]
        return prior_utility(features)

    def compare_features(self, features_a: Features, features_b: Features, aux_a: Aux, aux_b: Aux) -> PairScore:
        """``p`` from the head, else ``σ(u_prior(A) − u_prior(B))``; symmetric by construction."""
        if self.head is not None:
            p = float(self.head.predict_one(features_a, features_b))  # type: ignore[union-attr]
        else:
            p = _sigmoid(prior_utility(features_a) - prior_utility(features_b))
        return PairScore(p, aux_a, aux_b)
