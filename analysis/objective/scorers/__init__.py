"""The scorer classes, on the small base classes of :mod:`analysis.objective.scorers.base`.

* :class:`HandcraftedScorer` (``handcrafted``) — CPU image statistics, no weights;
* :class:`CheckpointScorer` (``siamese-checkpoint``) — a local Siamese checkpoint (torch);
* :class:`CommandScorer` (``command``) — any external program that prints JSON;
* :class:`HeadScorer`, :class:`CrossFitScorer` — a base scorer with fitted heads;
* :class:`CachedScorer` — any scorer through a score cache.

Each is imported on first use, so ``import analysis.objective.scorers`` loads none of
PyAV, torch or subprocess.
"""

from typing import TYPE_CHECKING

from analysis._lazy import lazy_getattr

from .base import BaseScorer, FeatureScorer, PairScorer, StimulusScorer

_LAZY = {
    "CachedScorer": "cached",
    "CheckpointScorer": "checkpoint",
    "CommandScorer": "command",
    "CrossFitScorer": "head",
    "HandcraftedScorer": "handcrafted",
    "HeadScorer": "head",
}

if TYPE_CHECKING:
    from .cached import CachedScorer
    from .checkpoint import CheckpointScorer
    from .command import CommandScorer
    from .handcrafted import HandcraftedScorer
    from .head import CrossFitScorer, HeadScorer


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "BaseScorer",
    "CachedScorer",
    "CheckpointScorer",
    "CommandScorer",
    "CrossFitScorer",
    "FeatureScorer",
    "HandcraftedScorer",
    "HeadScorer",
    "PairScorer",
    "StimulusScorer",
]
