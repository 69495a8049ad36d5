"""The fitted scorer model of ``panelrank fit-scorer``: fitting it, saving and loading it.

``panelrank fit-scorer`` writes one JSON file (:func:`save_scorer_model`) holding the
base scorer's configuration, the cross-fitted heads (one per fold of condition pairs),
the head fitted on every vote and the fit report. Wherever a scorer name is accepted
(``--tiebreak``, ``--scorer``), the path of such a file (``*.json``) is accepted too:
the tie-breaker then judges each condition pair with the head that never saw its votes.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import frames, screening
from analysis._files import atomic_write

from . import base as obj_base
from .cache import ScoreCache, score_stimuli
from .config import build_scorer, is_model_file, normalise_scorer_config, parse_options
from .crossfit import CrossFit, cross_fit_heads, join_votes_features
from .head import Head
from .head import pairwise_metrics as head_metrics
from .inputs import safe_name, stimuli_frame
from .scorers.head import CrossFitScorer, HeadScorer

#: ``format`` of a scorer model file written by :func:`save_scorer_model`.
MODEL_FORMAT = "panelrank-scorer-model/1"


@dataclass(frozen=True)
class ScorerModel:
    """A head fitted on votes by ``fit-scorer``: cross-fitted per condition pair, plus a full fit.

    Attributes
    ----------
    base
        ``{"name", "options"}`` of the scorer whose features the heads read.
    crossfit
        Fold heads and the fold of every condition pair (see :func:`cross_fit_heads`).
    report
        Fit sizes, held-out and cross-fitted accuracy / log-loss, the prior's baseline.
    source
        What the votes came from (study slug or file).
    created
        When it was fitted (ISO 8601, UTC).
    """

    base: dict[str, Any]
    crossfit: CrossFit
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    created: str = ""

    @property
    def version(self) -> str:
        """The cross-fit's version hash (all fold heads and the fold assignment)."""
        return self.crossfit.version

    @property
    def kind(self) -> str:
        """Head kind, ``"logistic"`` or ``"mlp"``."""
        return self.crossfit.full.kind

    def base_scorer(self) -> obj_base.Scorer:
        """A new instance of the base scorer (:attr:`base`).

        Returns
        -------
        Scorer

        Raises
        ------
        ValueError, UnknownScorerError
            As :func:`build_scorer`.
        """
        return build_scorer(self.base)

    def crossfit_scorer(self, base: obj_base.Scorer | None = None) -> CrossFitScorer:
        """The tie-breaking scorer: each pair judged by a head that never saw its votes.

        Parameters
        ----------
        base : Scorer, optional
            The base scorer to read features with (e.g. wrapped in a cache); default
            :meth:`base_scorer`.

        Returns
        -------
        CrossFitScorer
        """
        return CrossFitScorer(base if base is not None else self.base_scorer(), self.crossfit)

    def full_scorer(self, base: obj_base.Scorer | None = None) -> HeadScorer:
        """The head fitted on every vote (for stimuli outside the study, e.g. ``panelrank score``).

        ``base`` is as for :meth:`crossfit_scorer`.
        """
        return HeadScorer(base if base is not None else self.base_scorer(), self.crossfit.full)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (what :func:`save_scorer_model` writes).

        Returns
        -------
        dict
            ``format, version, kind, base, source, created, report, full, folds,
            fold_of_pair`` (the last as ``[cond_a, cond_b, fold]`` rows).
        """
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "kind": self.kind,
            "base": self.base,
            "source": self.source,
            "created": self.created,
            "report": self.report,
            "full": self.crossfit.full.to_dict(),
            "folds": [h.to_dict() for h in self.crossfit.heads],
            "fold_of_pair": [[a, b, k] for (a, b), k in sorted(self.crossfit.fold_of_pair.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerModel:
        """Inverse of :meth:`to_dict`; checks the format and the stored version.

        Raises :class:`ValueError` on another ``format``, a bad base config or head, or a
        ``version`` that does not match the heads; :class:`KeyError` or :class:`TypeError` on
        a structurally malformed mapping.
        """
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a panelrank scorer model (format {data.get('format')!r}, "
                             f"expected {MODEL_FORMAT!r}); write one with `panelrank fit-scorer`")
        crossfit = CrossFit(
            heads=tuple(Head.from_dict(h) for h in data["folds"]),
            fold_of_pair={obj_base.pair_key(str(a), str(b)): int(k) for a, b, k in data["fold_of_pair"]},
            full=Head.from_dict(data["full"]),
        )
        model = cls(normalise_scorer_config(data["base"]), crossfit, dict(data.get("report") or {}),
                    str(data.get("source") or ""), str(data.get("created") or ""))
        if data.get("version") not in (None, model.version):
            raise ValueError("scorer model was edited: its version does not match its heads")
        return model


def save_scorer_model(model: ScorerModel, path: str | Path) -> Path:
    """Write ``model`` as JSON (to a temporary name first, then renamed).

    Parameters
    ----------
    model : ScorerModel
    path : str or Path
        Destination (parent directories are created).

    Returns
    -------
    Path
        ``path``.
    """
    text = json.dumps(model.to_dict(), indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_scorer_model(path: str | Path) -> ScorerModel:
    """Read a file written by :func:`save_scorer_model` (a :class:`ScorerModel`).

    Raises :class:`ValueError` when the file is missing, not JSON, malformed, or fails the
    checks of :meth:`ScorerModel.from_dict`.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such scorer model file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not a JSON scorer model: {exc}") from exc
    try:
        return ScorerModel.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{p}: malformed scorer model ({exc})") from exc


def _metadata_columns(stim: pd.DataFrame) -> set[str]:
    aux = {f"aux_{k}" for k in range(1, obj_base.N_AUX + 1)}
    return {"path", "sha256", "cached", "error", *aux}


def stimulus_features(
    scorer: obj_base.Scorer,
    stimuli: pd.DataFrame,
    *,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Score every stimulus (cached) and attach ``content, condition``.

    Parameters
    ----------
    scorer : Scorer
    stimuli : DataFrame or mapping
        See :func:`analysis.objective.inputs.stimuli_frame`.
    cache, workers, progress
        As for :func:`analysis.objective.cache.score_stimuli`.

    Returns
    -------
    frame
        ``content, condition`` + the :func:`score_stimuli` columns, one row per stimulus.
    feature_names
        The scorer's numeric feature columns.

    Raises
    ------
    ScorerError
        When a stimulus cannot be scored.
    """
    frame = stimuli_frame(stimuli)
    scored = score_stimuli(scorer, frame["path"].tolist(), cache=cache, workers=workers, progress=progress)
    merged = frame.merge(scored, on="path", how="left")
    meta = _metadata_columns(scored)
    names = [c for c in scored.columns if c not in meta and pd.api.types.is_numeric_dtype(scored[c])
             and not pd.api.types.is_bool_dtype(scored[c])]
    return merged, names


def _pairwise_votes(votes: pd.DataFrame, screen: bool) -> pd.DataFrame:
    df = frames.validate(votes)
    if frames.detect_kind(df) != "pairwise":
        raise ValueError("fitting a scorer head needs pairwise votes (cond_a, cond_b, pref)")
    if screen:
        sr = screening.screen(df)
        df = sr.kept_votes(df)
        if len(df) == 0:
            raise ValueError("screening dropped every rater; use --no-screening to fit on everyone")
    return screening.main_votes(df)


def fit_scorer_model(
    votes: pd.DataFrame,
    stimuli: pd.DataFrame,
    base: str | Mapping[str, Any] = "handcrafted",
    *,
    kind: str = "logistic",
    n_folds: int = 5,
    l2: float = 1e-3,
    seed: int = 0,
    screen: bool = True,
    cache: ScoreCache | None = None,
    workers: int = 1,
    progress: Any = None,
    source: str = "",
) -> ScorerModel:
    """Features per stimulus (cached) → joined with the votes → cross-fitted Siamese heads.

    The report holds the full head's held-out accuracy / log-loss (20 % of the votes held
    out), the **cross-fitted** accuracy / log-loss (each vote predicted by the head of its
    pair's fold, i.e. a head that never saw a vote on that pair: the honest figure for a
    tie-breaker) and, for a feature scorer with a prior, the uncalibrated prior's
    accuracy on the same votes.

    Parameters
    ----------
    votes : DataFrame
        Pairwise votes (validated here; repeats and gold trials dropped).
    stimuli : DataFrame or mapping
        ``content, condition, path`` of every stimulus.
    base : str or mapping
        The scorer whose features the heads read (name or ``{name, options}``).
    kind : {"logistic", "mlp"}
        Head kind (``"mlp"`` needs torch).
    n_folds : int
        Folds of condition pairs for cross-fitting.
    l2 : float
        L2 penalty of the heads.
    seed : int
        Seed of the folds and the fits.
    screen : bool
        Drop raters that fail the default screening first.
    cache : ScoreCache, optional
        Score cache.
    workers : int
        Parallel workers for scoring stimuli.
    progress : callable or bool, optional
        Progress callback.
    source : str
        What the votes came from, recorded in the model.

    Returns
    -------
    ScorerModel

    Raises
    ------
    ValueError
        An unknown ``kind`` (or ``"mlp"`` without torch), non-pairwise votes, screening
        that drops everyone, a scorer without numeric features, or fewer than 10 votes
        with features for both stimuli.
    frames.FrameError
        On a malformed vote frame.
    ScorerError
        When a stimulus cannot be scored.
    """
    if kind == "mlp":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise ValueError("--kind mlp needs torch, which is not installed "
                             "(pip install torch==2.13.0, or use --kind logistic)")
    elif kind != "logistic":
        raise ValueError(f"unknown head kind {kind!r} (logistic or mlp)")
    cfg = normalise_scorer_config(base)
    scorer = build_scorer(cfg)
    main = _pairwise_votes(votes, screen)
    stim, names = stimulus_features(scorer, stimuli, cache=cache, workers=workers, progress=progress)
    if not names:
        raise ValueError(f"scorer {cfg['name']!r} reports no numeric features to fit a head on")
    feats = stim.loc[:, ["content", "condition", *names]]
    tv = join_votes_features(main.astype({"content": str, "cond_a": str, "cond_b": str}), feats)
    n = len(tv.prefs)
    if n < 10:
        raise ValueError(f"only {n} vote(s) have features for both stimuli; need at least 10 to fit a head")
    cf = cross_fit_heads(tv.features_a, tv.features_b, tv.prefs, tv.cond_a, tv.cond_b, n_folds=n_folds,
                         seed=seed, kind=kind, l2=l2, feature_names=names)
    # Out-of-fold: each vote predicted by the head that never saw its condition pair.
    p_oof = np.empty(n)
    fold_heads = [cf.head_for(str(a), str(b)) for a, b in zip(tv.cond_a, tv.cond_b, strict=True)]
    for head in {id(h): h for h in fold_heads}.values():
        rows = np.array([h is head for h in fold_heads])
        p_oof[rows] = head.predict(tv.features_a[rows], tv.features_b[rows])
    oof = head_metrics(p_oof, tv.prefs)
    full = cf.full.report
    rep: dict[str, Any] = {
        "kind": kind, "n_votes": n, "n_votes_dropped": int(tv.n_dropped), "n_features": len(names),
        "n_stimuli": len(stim), "n_condition_pairs": len(cf.fold_of_pair), "n_folds": len(cf.heads),
        "l2": l2, "seed": seed, "screening": screen,
        "heldout_accuracy": full.get("heldout_accuracy"), "heldout_log_loss": full.get("heldout_log_loss"),
        "n_heldout": full.get("n_heldout"),
        "crossfit_accuracy": oof["accuracy"], "crossfit_log_loss": oof["log_loss"],
        "train_accuracy": full.get("train_accuracy"), "train_log_loss": full.get("train_log_loss"),
    }
    if hasattr(scorer, "compare_features") and not getattr(scorer, "calibrated", False):
        aux_cols = [f"aux_{k}" for k in range(1, obj_base.N_AUX + 1)]
        by_cell = {(r["content"], r["condition"]): r for r in stim.to_dict("records")}
        p_prior = []
        for c, a, b in zip(tv.content, tv.cond_a, tv.cond_b, strict=True):
            ra, rb = by_cell[(c, a)], by_cell[(c, b)]
            p_prior.append(scorer.compare_features(  # type: ignore[attr-defined]
                {k: ra[k] for k in names}, {k: rb[k] for k in names},
                tuple(ra[k] for k in aux_cols), tuple(rb[k] for k in aux_cols)).p)
        prior = head_metrics(np.asarray(p_prior), tv.prefs)
        rep.update(prior_accuracy=prior["accuracy"], prior_log_loss=prior["log_loss"])
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return ScorerModel(base=cfg, crossfit=cf, report=rep, source=source, created=created)


def scorer_model_name(source: str, model: ScorerModel) -> str:
    """File name for a model: ``<source>.<kind>.<version>.json`` (source made file-safe).

    Parameters
    ----------
    source : str
        Study slug or file the votes came from (``"scorer"`` when empty).
    model : ScorerModel

    Returns
    -------
    str
    """
    return f"{safe_name(source or 'scorer')}.{model.kind}.{model.version}.json"


def resolve_scorer(spec: str | Mapping[str, Any], options: Mapping[str, Any] | None = None
                   ) -> tuple[obj_base.Scorer, ScorerModel | None]:
    """A scorer name / ``{name, options}`` / model file → (scorer, model or None).

    ``options`` are merged over the configuration's own (a model file takes none: its
    base scorer is fixed by the fit). For a model file the scorer is the full head.

    Parameters
    ----------
    spec : str or mapping
        Scorer name, ``{name, options}`` or a ``*.json`` model file.
    options : mapping, optional
        Extra scorer options.

    Returns
    -------
    scorer : Scorer
    model : ScorerModel or None
        The loaded model for a model file.

    Raises
    ------
    ValueError
        Options given with a model file, a bad model file or config, or a bad option.
    UnknownScorerError
        When no scorer has that name.
    """
    if is_model_file(spec):
        if options:
            raise ValueError("scorer options cannot be combined with a fitted model file "
                             "(its base scorer is fixed by the fit)")
        model = load_scorer_model(spec)  # type: ignore[arg-type]
        return model.full_scorer(), model
    cfg = normalise_scorer_config(spec)  # type: ignore[arg-type]
    cfg["options"].update(options or {})
    return build_scorer(cfg), None


def load_scorer(spec: str | Mapping[str, Any], options: Sequence[str] | Mapping[str, Any] | None = None
                ) -> obj_base.Scorer:
    """The scorer a ``--scorer`` value and its ``--option KEY=VALUE`` items name.

    Parameters
    ----------
    spec : str or mapping
        Scorer name, ``{name, options}`` or a ``*.json`` model file (then its full head).
    options : sequence of str or mapping, optional
        ``KEY=VALUE`` strings or parsed options (see :func:`parse_options`).

    Returns
    -------
    Scorer

    Raises
    ------
    ValueError, UnknownScorerError, OSError, ImportError
        One of :data:`SCORER_ERRORS`, as :func:`resolve_scorer`.
    """
    scorer, _ = resolve_scorer(spec, parse_options(options))
    return scorer
