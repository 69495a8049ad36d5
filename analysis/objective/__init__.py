"""Objective scorers: the hook, the built-in scorers, caching, the challenge score, tie-breaking.

The small core is :mod:`analysis.objective.base` (protocol, :class:`PairScore`, p_sym,
discovery through the ``panelrank.scorers`` entry points). Everything else is built on it:

* :mod:`~analysis.objective.scorers` — the scorer classes on a small base class
  (:class:`~analysis.objective.scorers.base.BaseScorer`): the CPU ``handcrafted`` scorer
  (its frame and clip statistics in :mod:`~analysis.objective.scorers.features`), a local
  Siamese ``checkpoint``, an external ``command``, and the fitted ``head`` scorers;
* :mod:`~analysis.objective.head` — fit a calibrated head on votes;
  :mod:`~analysis.objective.crossfit` — cross-fitting it over condition pairs;
* :mod:`~analysis.objective.cache` — results by (sha256, scorer, version), batch scoring;
* :mod:`~analysis.objective.challenge` — S_real, S_synth, S_obj and the CSV layouts;
* :mod:`~analysis.objective.tiebreak` — the callable the ranking uses to order ties;
* :mod:`~analysis.objective.config` — scorer options and configurations;
* :mod:`~analysis.objective.scorer_model` — the fitted scorer model file of
  ``panelrank fit-scorer`` (:class:`ScorerModel`), and resolving a spec that may name one;
* :mod:`~analysis.objective.inputs` — the CSV inputs of the scoring commands.

The names below are importable from ``analysis.objective``. Only the core is imported
eagerly; the rest on first use (PEP 562), so ``import analysis.objective`` loads neither
PyAV, torch, sqlite3, subprocess nor multiprocessing — nor pandas and scipy, which a
worker that only runs the handcrafted scorer does not need (~100 MB of RSS).
"""

from typing import TYPE_CHECKING

from analysis._lazy import lazy_getattr

from .base import (
    ENTRY_POINT_GROUP,
    N_AUX,
    NOISE_AUX_INDEX,
    PairScore,
    Scorer,
    ScorerError,
    UnknownScorerError,
    available_scorers,
    combine_orders,
    describe,
    get_scorer,
    p_sym,
    p_sym_value,
    pair_json,
    pair_key,
    scorer_from_config,
    symmetric_compare,
)

# Submodule (relative) → the names it provides.
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    "cache": ("ScoreCache", "file_sha256", "open_cache", "score_pairs", "score_stimuli",
              "text_progress"),
    "challenge": ("ChallengeScore", "M_COLUMNS", "challenge_score", "challenge_scores", "challenge_tables",
                  "read_real_csv", "read_synth_csv", "s_obj", "s_real", "s_synth", "video_rmse",
                  "write_real_csv", "write_synth_csv"),
    "config": ("SCORER_ERRORS", "build_scorer", "is_model_file", "normalise_scorer_config", "parse_options"),
    "crossfit": ("CrossFit", "TrainingVotes", "cross_fit_heads", "join_votes_features"),
    "head": ("Head", "fit_head", "pairwise_metrics"),
    "inputs": ("REAL_INPUT_COLUMNS", "STIMULI_COLUMNS", "SYNTH_INPUT_COLUMNS", "read_challenge_input",
               "read_paths_csv", "read_s_obj_csv", "read_stimuli_csv", "safe_name", "stimuli_frame"),
    "scorer_model": ("MODEL_FORMAT", "ScorerModel", "fit_scorer_model", "load_scorer", "load_scorer_model",
                     "resolve_scorer", "save_scorer_model", "scorer_model_name", "stimulus_features"),
    "scorers": ("BaseScorer", "CachedScorer", "CheckpointScorer", "CommandScorer", "CrossFitScorer",
                "HandcraftedScorer", "HeadScorer"),
    "tiebreak": ("TieBreaker", "build_tiebreaker", "make_tiebreaker", "pairwise_agreement"),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}

if TYPE_CHECKING:
    from .cache import ScoreCache, file_sha256, open_cache, score_pairs, score_stimuli, text_progress
    from .challenge import (
        M_COLUMNS,
        ChallengeScore,
        challenge_score,
        challenge_scores,
        challenge_tables,
        read_real_csv,
        read_synth_csv,
        s_obj,
        s_real,
        s_synth,
        video_rmse,
        write_real_csv,
        write_synth_csv,
    )
    from .config import SCORER_ERRORS, build_scorer, is_model_file, normalise_scorer_config, parse_options
    from .crossfit import CrossFit, TrainingVotes, cross_fit_heads, join_votes_features
    from .head import Head, fit_head, pairwise_metrics
    from .inputs import (
        REAL_INPUT_COLUMNS,
        STIMULI_COLUMNS,
        SYNTH_INPUT_COLUMNS,
        read_challenge_input,
        read_paths_csv,
        read_s_obj_csv,
        read_stimuli_csv,
        safe_name,
        stimuli_frame,
    )
    from .scorer_model import (
        MODEL_FORMAT,
        ScorerModel,
        fit_scorer_model,
        load_scorer,
        load_scorer_model,
        resolve_scorer,
        save_scorer_model,
        scorer_model_name,
        stimulus_features,
    )
    from .scorers import (
        BaseScorer,
        CachedScorer,
        CheckpointScorer,
        CommandScorer,
        CrossFitScorer,
        HandcraftedScorer,
        HeadScorer,
    )
    from .tiebreak import TieBreaker, build_tiebreaker, make_tiebreaker, pairwise_agreement


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ENTRY_POINT_GROUP",
    "MODEL_FORMAT",
    "M_COLUMNS",
    "NOISE_AUX_INDEX",
    "N_AUX",
    "REAL_INPUT_COLUMNS",
    "SCORER_ERRORS",
    "STIMULI_COLUMNS",
    "SYNTH_INPUT_COLUMNS",
    "BaseScorer",
    "CachedScorer",
    "ChallengeScore",
    "CheckpointScorer",
    "CommandScorer",
    "CrossFit",
    "CrossFitScorer",
    "HandcraftedScorer",
    "Head",
    "HeadScorer",
    "PairScore",
    "ScoreCache",
    "Scorer",
    "ScorerError",
    "ScorerModel",
    "TieBreaker",
    "TrainingVotes",
    "UnknownScorerError",
    "available_scorers",
    "build_scorer",
    "build_tiebreaker",
    "challenge_score",
    "challenge_scores",
    "challenge_tables",
    "combine_orders",
    "cross_fit_heads",
    "describe",
    "file_sha256",
    "fit_head",
    "fit_scorer_model",
    "get_scorer",
    "is_model_file",
    "join_votes_features",
    "load_scorer",
    "load_scorer_model",
    "make_tiebreaker",
    "normalise_scorer_config",
    "open_cache",
    "p_sym",
    "p_sym_value",
    "pair_json",
    "pair_key",
    "pairwise_agreement",
    "pairwise_metrics",
    "parse_options",
    "read_challenge_input",
    "read_paths_csv",
    "read_real_csv",
    "read_s_obj_csv",
    "read_stimuli_csv",
    "read_synth_csv",
    "resolve_scorer",
    "s_obj",
    "s_real",
    "s_synth",
    "safe_name",
    "save_scorer_model",
    "score_pairs",
    "score_stimuli",
    "scorer_from_config",
    "scorer_model_name",
    "stimuli_frame",
    "stimulus_features",
    "symmetric_compare",
    "text_progress",
    "video_rmse",
    "write_real_csv",
    "write_synth_csv",
]
