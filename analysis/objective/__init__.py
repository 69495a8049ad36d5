"""Objective scorers: the hook, the built-in scorers, caching, the challenge score, tie-breaking.

The small core is :mod:`analysis.objective.base` (protocol, :class:`PairScore`, p_sym,
discovery through the ``panelrank.scorers`` entry points). Everything else is built on it:

* :mod:`~analysis.objective.handcrafted` — CPU scorer from image statistics, no weights;
* :mod:`~analysis.objective.checkpoint` — a local Siamese checkpoint (TorchScript or
  state dict), CUDA when present;
* :mod:`~analysis.objective.command` — any external program that prints JSON;
* :mod:`~analysis.objective.head` — fit a calibrated head on votes, with cross-fitting;
* :mod:`~analysis.objective.cache` — results by (sha256, scorer, version), batch scoring;
* :mod:`~analysis.objective.challenge` — S_real, S_synth, S_obj and the CSV layouts;
* :mod:`~analysis.objective.tiebreak` — the callable the ranking uses to order ties;
* :mod:`~analysis.objective.model` — scorer configurations, the fitted scorer model file
  of ``panelrank fit-scorer`` (:class:`ScorerModel`), the CLI's tie-breaker.

Submodules that need torch import it lazily; ``import analysis.objective`` needs only
numpy, scipy, pandas and PyAV.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import (
    ENTRY_POINT_GROUP,
    N_AUX,
    NOISE_AUX_INDEX,
    PairScore,
    Scorer,
    ScorerError,
    UnknownScorerError,
    available_scorers,
    get_scorer,
    p_sym,
    p_sym_value,
    scorer_from_config,
    symmetric_compare,
)

# Everything beyond the core is imported on first use (PEP 562), so a worker that only
# runs the handcrafted scorer does not pay for pandas and scipy (~100 MB of RSS).
_LAZY = {
    "CachedScorer": "cache",
    "ScoreCache": "cache",
    "score_pairs": "cache",
    "score_stimuli": "cache",
    "ChallengeScore": "challenge",
    "challenge_score": "challenge",
    "challenge_scores": "challenge",
    "s_obj": "challenge",
    "s_real": "challenge",
    "s_synth": "challenge",
    "video_rmse": "challenge",
    "write_real_csv": "challenge",
    "write_synth_csv": "challenge",
    "CrossFit": "head",
    "CrossFitScorer": "head",
    "Head": "head",
    "HeadScorer": "head",
    "cross_fit_heads": "head",
    "fit_head": "head",
    "join_votes_features": "head",
    "ScorerModel": "model",
    "load_scorer_model": "model",
    "save_scorer_model": "model",
    "TieBreaker": "tiebreak",
    "make_tiebreaker": "tiebreak",
    "pairwise_agreement": "tiebreak",
}

if TYPE_CHECKING:
    from .cache import CachedScorer, ScoreCache, score_pairs, score_stimuli
    from .challenge import (
        ChallengeScore,
        challenge_score,
        challenge_scores,
        s_obj,
        s_real,
        s_synth,
        video_rmse,
        write_real_csv,
        write_synth_csv,
    )
    from .head import CrossFit, CrossFitScorer, Head, HeadScorer, cross_fit_heads, fit_head, join_votes_features
    from .model import ScorerModel, load_scorer_model, save_scorer_model
    from .tiebreak import TieBreaker, make_tiebreaker, pairwise_agreement


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ENTRY_POINT_GROUP",
    "NOISE_AUX_INDEX",
    "N_AUX",
    "CachedScorer",
    "ChallengeScore",
    "CrossFit",
    "CrossFitScorer",
    "Head",
    "HeadScorer",
    "PairScore",
    "ScoreCache",
    "Scorer",
    "ScorerError",
    "ScorerModel",
    "TieBreaker",
    "UnknownScorerError",
    "available_scorers",
    "challenge_score",
    "challenge_scores",
    "cross_fit_heads",
    "fit_head",
    "get_scorer",
    "join_votes_features",
    "load_scorer_model",
    "make_tiebreaker",
    "p_sym",
    "p_sym_value",
    "pairwise_agreement",
    "s_obj",
    "s_real",
    "s_synth",
    "save_scorer_model",
    "score_pairs",
    "score_stimuli",
    "scorer_from_config",
    "symmetric_compare",
    "video_rmse",
    "write_real_csv",
    "write_synth_csv",
]
