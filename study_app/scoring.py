"""Objective scoring of a study in the database (the library behind ``score-study``,
``fit-scorer`` and ``analyze-study``, whose commands are in :mod:`study_app.cli.scoring`).

The numerics live in :mod:`analysis.objective`; this module only reads what a study
holds (stimulus paths, the pairs its design compares, the ``scorer:`` of its manifest),
scores it through the cache, and says where the cache and fitted models live
(``<instance>/score-cache``, ``<instance>/scorers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import aliased

from analysis import objective
from analysis.objective import ScoreCache, score_pairs
from study_app.models import Condition, Content, Stimulus, Study, StudyItem

_AUX = [f"aux_{k}" for k in range(1, objective.N_AUX + 1)]


# --------------------------------------------------------------------------- DB reads


def default_cache_dir(app: Flask | None = None) -> Path:
    """Default score cache: ``<instance>/score-cache``."""
    return Path((app or current_app).config["INSTANCE_DIR"]) / "score-cache"


def models_dir(app: Flask | None = None) -> Path:
    """Default folder of fitted scorer models: ``<instance>/scorers``."""
    return Path((app or current_app).config["INSTANCE_DIR"]) / "scorers"


def study_stimuli(session: DBSession, study: Study) -> pd.DataFrame:
    """``content, condition, path`` of every stimulus of ``study``."""
    rows = session.execute(
        select(Content.key, Condition.key, Stimulus.path)
        .join(Content, Stimulus.content_id == Content.id)
        .join(Condition, Stimulus.condition_id == Condition.id)
        .where(Stimulus.study_id == study.id)
        .order_by(Content.position, Condition.position)
    ).all()
    return pd.DataFrame([tuple(map(str, r)) for r in rows], columns=["content", "condition", "path"])


def study_pairs(session: DBSession, study: Study) -> pd.DataFrame:
    """The (content, condition pair)s the study's design compares (its items), each once, ``cond_a < cond_b``."""
    sa, sb = aliased(Stimulus), aliased(Stimulus)
    ca, cb = aliased(Condition), aliased(Condition)
    rows = session.execute(
        select(Content.key, ca.key, cb.key)
        .select_from(StudyItem)
        .join(sa, StudyItem.stimulus_a_id == sa.id)
        .join(sb, StudyItem.stimulus_b_id == sb.id)
        .join(Content, sa.content_id == Content.id)
        .join(ca, sa.condition_id == ca.id)
        .join(cb, sb.condition_id == cb.id)
        .where(StudyItem.study_id == study.id)
    ).all()
    keys = sorted({(str(c), *objective.pair_key(str(a), str(b))) for c, a, b in rows})
    return pd.DataFrame(keys, columns=["content", "cond_a", "cond_b"])


def study_scorer(study: Study) -> dict[str, Any] | None:
    """The manifest's ``scorer:`` (``{name, options}``) stored with the study, or None."""
    found = (study.manifest or {}).get("scorer")
    return dict(found) if isinstance(found, Mapping) else None


# --------------------------------------------------------------------------- scoring


@dataclass
class StudyScores:
    """What ``score-study`` computed.

    Attributes
    ----------
    stimuli
        One row per stimulus: ``content, condition, path, sha256, cached, error``, the
        aux scores ``aux_1..aux_11`` and the scorer's features.
    pairs
        One row per needed pair: ``content, cond_a, cond_b, p`` (p_sym), ``p_ab, p_ba``.
    conditions
        Per condition: ``condition, n_stimuli, mean_p_sym`` (over its needed pairs, from
        its side), ``a1_overall, a4_noise`` (means).
    counts
        ``stimuli, stimuli_scored, stimuli_cached, pairs, pairs_scored, pairs_cached`` and
        ``pairs_from_features`` (True when pairs cost nothing beyond the stimuli).
    """

    scorer: str
    stimuli: pd.DataFrame
    pairs: pd.DataFrame
    conditions: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        c = self.counts
        lines = [f"scorer {self.scorer}",
                 f"stimuli: {c['stimuli']} ({c['stimuli_scored']} scored, {c['stimuli_cached']} cached)"]
        if c["pairs_from_features"]:
            lines.append(f"pairs: {c['pairs']} needed by the design (computed from the stimulus results)")
        else:
            lines.append(f"pairs: {c['pairs']} needed by the design; ordered calls: "
                         f"{c['pairs_scored']} scored, {c['pairs_cached']} cached")
        if len(self.conditions):
            lines.append(f"{'condition':<20} {'stimuli':>7} {'mean p_sym':>10} {'a1':>6} {'a4':>6}")
            for r in self.conditions.itertuples(index=False):
                lines.append(f"{r.condition:<20} {r.n_stimuli:>7} {r.mean_p_sym:>10.3f} {r.a1_overall:>6.3f} "
                             f"{r.a4_noise:>6.3f}")
        return lines


def _pair_rows(pairs: pd.DataFrame, judge: Any) -> pd.DataFrame:
    rows = []
    for content, a, b in pairs.itertuples(index=False):
        p_ab, p_ba = judge(content, a, b), judge(content, b, a)
        rows.append((content, a, b, objective.p_sym_value(p_ab, p_ba), p_ab, p_ba))
    return pd.DataFrame(rows, columns=["content", "cond_a", "cond_b", "p", "p_ab", "p_ba"])


def _condition_table(stimuli: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    sides = pd.concat([
        pairs.loc[:, ["cond_a", "p"]].rename(columns={"cond_a": "condition"}),
        pairs.loc[:, ["cond_b", "p"]].rename(columns={"cond_b": "condition"}).assign(p=lambda d: 1.0 - d["p"]),
    ])
    mean_p = sides.groupby("condition")["p"].mean()
    aux = stimuli.groupby("condition")[["aux_1", "aux_4"]].mean()
    out = pd.DataFrame({"n_stimuli": stimuli.groupby("condition").size()})
    out["mean_p_sym"] = mean_p.reindex(out.index)
    out["a1_overall"] = aux["aux_1"].reindex(out.index)
    out["a4_noise"] = aux["aux_4"].reindex(out.index)
    out = out.reset_index().rename(columns={"index": "condition"})
    return out.sort_values("mean_p_sym", ascending=False, na_position="last").reset_index(drop=True)


def score_study(
    stimuli: pd.DataFrame,
    pairs: pd.DataFrame,
    scorer: objective.Scorer,
    *,
    model: objective.ScorerModel | None = None,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> StudyScores:
    """Score every stimulus and every needed pair of a study (through ``cache``).

    A scorer that can pair precomputed results (``compare_features``: the handcrafted
    scorer, fitted heads) analyses each stimulus once and pairs cost nothing; a fitted
    model file judges each pair with the head that never saw its votes. Other scorers
    (``command``, ``siamese-checkpoint``) are run on each needed pair in both orders.
    """
    label = f"{scorer.name} {scorer.version}"
    if model is not None:
        scorer = model.base_scorer()
        label = f"{scorer.name} {model.crossfit_scorer(scorer).version} (cross-fitted head)"
    elif getattr(scorer, "calibrated", None) is False:
        label += " (uncalibrated prior)"
    stimuli = stimuli.reset_index(drop=True)
    if model is not None or hasattr(scorer, "compare_features"):
        stim, names = objective.stimulus_features(scorer, stimuli, cache=cache, workers=workers, progress=progress)
        failed = stim[stim["error"].notna()]
        if len(failed):
            raise objective.ScorerError(f"{len(failed)} stimulus file(s) failed: {failed['error'].iloc[0]}")
        cell = {(r["content"], r["condition"]): r for r in stim.to_dict("records")}

        def judge(content: str, a: str, b: str) -> float:
            ra, rb = cell[(content, a)], cell[(content, b)]
            fa, fb = {k: ra[k] for k in names}, {k: rb[k] for k in names}
            if model is not None:
                return model.crossfit.head_for(a, b).predict_one(fa, fb)
            return scorer.compare_features(  # type: ignore[attr-defined]
                fa, fb, tuple(ra[k] for k in _AUX), tuple(rb[k] for k in _AUX)).p

        pair_frame = _pair_rows(pairs, judge)
        counts = {"stimuli": len(stim), "stimuli_scored": int((~stim["cached"].astype(bool)).sum()),
                  "stimuli_cached": int(stim["cached"].astype(bool).sum()), "pairs": len(pair_frame),
                  "pairs_scored": 0, "pairs_cached": 0, "pairs_from_features": True}
    else:
        path = {(r.content, r.condition): r.path for r in stimuli.itertuples(index=False)}
        ordered = [(path[(c, a)], path[(c, b)]) for c, a, b in pairs.itertuples(index=False)]
        hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
        scored = score_pairs(scorer, ordered, cache=cache, workers=workers, progress=progress)
        bad = scored[scored["error"].notna()]
        if len(bad):
            raise objective.ScorerError(f"{len(bad)} pair(s) failed: {bad['error'].iloc[0]}")
        pair_frame = pairs.reset_index(drop=True).assign(p=scored["p"].to_numpy(), p_ab=scored["p_ab"].to_numpy(),
                                                         p_ba=scored["p_ba"].to_numpy())
        # A stimulus's aux: the mean of what its pairs reported for it.
        aux_rows = [scored[["path_a", *[f"aux_a_{k}" for k in range(1, 12)]]].set_axis(["path", *_AUX], axis=1),
                    scored[["path_b", *[f"aux_b_{k}" for k in range(1, 12)]]].set_axis(["path", *_AUX], axis=1)]
        aux = pd.concat(aux_rows).groupby("path", as_index=False).mean()
        stim = stimuli.merge(aux, on="path", how="left")
        n_scored = (cache.misses - misses) if cache is not None else 2 * len(ordered)
        counts = {"stimuli": len(stim), "stimuli_scored": 0, "stimuli_cached": 0, "pairs": len(pair_frame),
                  "pairs_scored": n_scored, "pairs_cached": (cache.hits - hits) if cache is not None else 0,
                  "pairs_from_features": False}
    return StudyScores(scorer=label, stimuli=stim, pairs=pair_frame, conditions=_condition_table(stim, pair_frame),
                       counts=counts)


__all__ = ["StudyScores", "default_cache_dir", "models_dir", "score_study", "study_pairs", "study_scorer",
           "study_stimuli"]
