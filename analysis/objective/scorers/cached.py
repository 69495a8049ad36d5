"""A scorer wrapped so every call goes through a :class:`~analysis.objective.cache.ScoreCache`."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PairScore, Scorer, StrPath, check_aux
from ..cache import ScoreCache
from .base import DerivedScorer, StimulusResult, StimulusScorer


@dataclass
class CachedScorer(DerivedScorer, StimulusScorer):
    """Wrap a scorer so every call goes through a :class:`ScoreCache` (same protocol)."""

    scorer: Scorer
    cache: ScoreCache

    @property
    def base(self) -> Scorer:  # type: ignore[override]
        """The wrapped scorer, whose name and version are the cached one's."""
        return self.scorer

    def stimulus(self, path: StrPath) -> StimulusResult:
        """The wrapped scorer's features and aux of one stimulus, from the cache or stored in it."""
        sha = self.cache.sha256(path)
        hit = self.cache.get_stimulus(sha, self.name, self.version)
        if hit is None:
            hit = (self.scorer.features(path), check_aux(self.scorer.aux(path)))
            self.cache.put_stimulus(sha, self.name, self.version, hit[0], hit[1])
        return hit

    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """See :meth:`Scorer.compare`; through the cache.

        A scorer with ``compare_features`` is asked from the cached per-stimulus features;
        any other scorer's ordered pair answer is cached as a whole.
        """
        if hasattr(self.scorer, "compare_features"):
            return self._compare_stimuli(self.scorer, path_a, path_b)
        sha_a, sha_b = self.cache.sha256(path_a), self.cache.sha256(path_b)
        hit = self.cache.get_pair(sha_a, sha_b, self.name, self.version)
        if hit is None:
            hit = self.scorer.compare(path_a, path_b)
            self.cache.put_pair(sha_a, sha_b, self.name, self.version, hit)
        return hit
