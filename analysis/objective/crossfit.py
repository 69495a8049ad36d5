"""Cross-fitting heads over condition pairs, and joining votes to stimulus features.

**Cross-fitting** (:func:`cross_fit_heads`): condition pairs are split into folds and the
head that breaks a tie between conditions X and Y is never trained on votes comparing
X with Y — otherwise the tie-breaker would simply echo the votes that failed to separate
them and look better than it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .base import pair_key
from .head import Head, feature_matrix, fit_head


@dataclass(frozen=True)
class CrossFit:
    """Heads fitted on folds of condition pairs (see :func:`cross_fit_heads`).

    Attributes
    ----------
    heads
        One head per fold; head ``k`` never saw a vote of a pair in fold ``k``.
    fold_of_pair
        Unordered condition pair (:func:`~analysis.objective.base.pair_key`) → fold.
    full
        Head fitted on every vote, used for pairs that had no votes at all (it cannot
        have seen their votes either).
    """

    heads: tuple[Head, ...]
    fold_of_pair: Mapping[tuple[str, str], int]
    full: Head

    def head_for(self, cond_a: str, cond_b: str) -> Head:
        """The head allowed to judge conditions ``cond_a`` vs ``cond_b``.

        Parameters
        ----------
        cond_a, cond_b : str
            In any order.

        Returns
        -------
        Head
            The head of the pair's fold, or :attr:`full` for a pair without votes.
        """
        fold = self.fold_of_pair.get(pair_key(cond_a, cond_b))
        return self.full if fold is None else self.heads[fold]

    def pairs_seen_by(self, fold: int) -> set[tuple[str, str]]:
        """Condition pairs whose votes trained head ``fold``.

        Parameters
        ----------
        fold : int

        Returns
        -------
        set of tuple of (str, str)
            Keys as :func:`~analysis.objective.base.pair_key` makes them.
        """
        return {k for k, f in self.fold_of_pair.items() if f != fold}

    @property
    def version(self) -> str:
        """Hash of all fold heads and the fold assignment."""
        blob = json.dumps([[h.version for h in self.heads], sorted((list(k), v) for k, v in self.fold_of_pair.items())])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cross_fit_heads(
    features_a: Any,
    features_b: Any,
    prefs: Any,
    cond_a: Sequence[str],
    cond_b: Sequence[str],
    *,
    n_folds: int = 5,
    seed: int = 0,
    **fit_options: Any,
) -> CrossFit:
    """Fit one head per fold of *condition pairs*, so no pair is judged by its own votes.

    Parameters
    ----------
    features_a, features_b, prefs
        As for :func:`fit_head`.
    cond_a, cond_b
        The conditions compared by each vote (order irrelevant).
    n_folds
        Folds of condition pairs (capped at the number of distinct pairs, at least 2).
    seed
        Seed of the fold assignment and of every fit.
    **fit_options
        Passed to :func:`fit_head` (``kind``, ``l2``, ...).

    Returns
    -------
    CrossFit
        The fold heads, the pair → fold assignment and a head fitted on every vote.

    Raises
    ------
    ValueError
        When the votes cover fewer than two condition pairs, or as :func:`fit_head`.
    """
    keys = [pair_key(str(a), str(b)) for a, b in zip(cond_a, cond_b, strict=True)]
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        raise ValueError("cross-fitting needs votes on at least two condition pairs")
    k = max(2, min(n_folds, len(uniq)))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_pair = {uniq[i]: int(pos % k) for pos, i in enumerate(order)}
    xa, names = feature_matrix(features_a, fit_options.pop("feature_names", None))
    xb, _ = feature_matrix(features_b, names)
    pref = np.asarray(prefs, dtype=float)
    sw = fit_options.pop("sample_weight", None)
    w = None if sw is None else np.asarray(sw, dtype=float)
    fold = np.array([fold_of_pair[key] for key in keys])
    heads = []
    for f in range(k):
        train = fold != f
        heads.append(
            fit_head(
                xa[train],
                xb[train],
                pref[train],
                feature_names=names,
                sample_weight=None if w is None else w[train],
                seed=seed,
                **fit_options,
            )
        )
    full = fit_head(xa, xb, pref, feature_names=names, sample_weight=w, seed=seed, **fit_options)
    return CrossFit(tuple(heads), fold_of_pair, full)


# --------------------------------------------------------------------------- data prep


@dataclass(frozen=True)
class TrainingVotes:
    """Votes joined to stimulus features, ready for :func:`fit_head` / :func:`cross_fit_heads`."""

    features_a: pd.DataFrame
    features_b: pd.DataFrame
    prefs: np.ndarray
    cond_a: np.ndarray
    cond_b: np.ndarray
    content: np.ndarray
    n_dropped: int = 0

    def to_frame(self) -> pd.DataFrame:
        """One row per vote: content, conditions, pref, then ``a_``/``b_`` features.

        Returns
        -------
        DataFrame
        """
        out = pd.DataFrame({"content": self.content, "cond_a": self.cond_a, "cond_b": self.cond_b})
        out["pref"] = self.prefs
        a = self.features_a.add_prefix("a_").reset_index(drop=True)
        b = self.features_b.add_prefix("b_").reset_index(drop=True)
        return pd.concat([out, a, b], axis=1)


def join_votes_features(votes: pd.DataFrame, stimulus_features: pd.DataFrame) -> TrainingVotes:
    """Attach per-stimulus features to pairwise votes.

    Votes whose stimuli have no features are dropped and counted in ``n_dropped``.

    Parameters
    ----------
    votes
        Tidy pairwise frame (``content``, ``cond_a``, ``cond_b``, ``pref``; see
        ``analysis.frames``).
    stimulus_features
        One row per stimulus with columns ``content``, ``condition`` and one column per
        feature (e.g. from :func:`analysis.objective.cache.score_stimuli`); only numeric
        columns are used as features.

    Returns
    -------
    TrainingVotes

    Raises
    ------
    ValueError
        When a required column is missing from either frame.
    """
    need = {"content", "cond_a", "cond_b", "pref"}
    if missing := need - set(votes.columns):
        raise ValueError(f"votes frame lacks column(s) {sorted(missing)}")
    if missing := {"content", "condition"} - set(stimulus_features.columns):
        raise ValueError(f"stimulus features lack column(s) {sorted(missing)}")
    feats = stimulus_features.set_index(["content", "condition"])
    feats = feats.select_dtypes("number")
    idx_a = pd.MultiIndex.from_arrays([votes["content"], votes["cond_a"]])
    idx_b = pd.MultiIndex.from_arrays([votes["content"], votes["cond_b"]])
    ok = idx_a.isin(feats.index) & idx_b.isin(feats.index)
    v = votes.loc[ok]
    fa = feats.loc[idx_a[ok]].reset_index(drop=True)
    fb = feats.loc[idx_b[ok]].reset_index(drop=True)
    return TrainingVotes(
        fa,
        fb,
        v["pref"].to_numpy(dtype=float),
        v["cond_a"].astype(str).to_numpy(),
        v["cond_b"].astype(str).to_numpy(),
        v["content"].astype(str).to_numpy(),
        int((~ok).sum()),
    )
