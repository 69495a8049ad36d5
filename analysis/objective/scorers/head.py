"""Scorers built on fitted heads: :class:`HeadScorer` (one head) and :class:`CrossFitScorer` (one per pair)."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import PairScore, Scorer, StrPath
from ..crossfit import CrossFit
from ..head import Head
from .base import Aux, BaseScorer, DerivedScorer, Features, FeatureScorer, StimulusResult


@dataclass
class HeadScorer(DerivedScorer, FeatureScorer):
    """Any feature-producing scorer with its pairwise answer replaced by a fitted head.

    ``features`` and ``aux`` come from ``base``; ``p = head.predict_one(...)``.
    """

    base: Scorer
    head: Head

    @property
    def version_tag(self) -> str:
        """``+head.<head version>``."""
        return f"+head.{self.head.version}"

    @property
    def calibrated(self) -> bool:
        """Always True: the head was fitted on votes."""
        return True

    def stimulus(self, path: StrPath) -> StimulusResult:
        """The base scorer's features and aux of one stimulus."""
        return self.base.features(path), self.base.aux(path)

    def compare_features(self, features_a: Features, features_b: Features, aux_a: Aux, aux_b: Aux) -> PairScore:
        """Pairwise answer of the head; the aux pass through."""
        return PairScore(self.head.predict_one(features_a, features_b), aux_a, aux_b)


@dataclass
class CrossFitScorer(DerivedScorer, BaseScorer):
    """A base scorer plus a :class:`~analysis.objective.crossfit.CrossFit`: the scorer to use depends on the pair.

    The tie-breaker (:func:`analysis.objective.tiebreak.make_tiebreaker`) calls
    :meth:`for_pair` so conditions X and Y are compared with the head that never saw a
    vote on (X, Y).
    """

    base: Scorer
    crossfit: CrossFit

    @property
    def version_tag(self) -> str:
        """``+crossfit.<cross-fit version>``."""
        return f"+crossfit.{self.crossfit.version}"

    def for_pair(self, cond_a: str, cond_b: str) -> HeadScorer:
        """The base scorer with the head that never saw a vote on conditions ``cond_a`` and ``cond_b``.

        The conditions come in any order (see :meth:`CrossFit.head_for`).
        """
        return HeadScorer(self.base, self.crossfit.head_for(cond_a, cond_b))
