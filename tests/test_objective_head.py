"""The trainable head: weight recovery, persistence, cross-fitting, and use as a tie-breaker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.objective import (
    N_AUX,
    CrossFitScorer,
    Head,
    HeadScorer,
    PairScore,
    cross_fit_heads,
    fit_head,
    join_votes_features,
    make_tiebreaker,
    pair_key,
    pairwise_agreement,
    pairwise_metrics,
)

NAMES = ("sharp", "noise", "bright", "junk")
BETA = np.array([1.5, -1.0, 0.5, 0.0])  # on standardised features
SCALES = np.array([2.0, 0.5, 10.0, 3.0])


def synthetic_votes(n: int, seed: int = 0, beta: np.ndarray = BETA):
    rng = np.random.default_rng(seed)
    xa = rng.normal(size=(n, 4)) * SCALES + 5.0
    xb = rng.normal(size=(n, 4)) * SCALES + 5.0
    p = 1 / (1 + np.exp(-((xa - xb) / SCALES) @ beta))
    prefs = np.where(rng.random(n) < p, 1, -1)
    return pd.DataFrame(xa, columns=NAMES), pd.DataFrame(xb, columns=NAMES), prefs


def test_logistic_head_recovers_known_weights() -> None:
    fa, fb, prefs = synthetic_votes(6000)
    head = fit_head(fa, fb, prefs, l2=1e-5)
    # The head standardises by the sample std, which matches SCALES up to sampling error.
    np.testing.assert_allclose(head.coef, BETA, atol=0.12)
    assert head.feature_names == NAMES and head.kind == "logistic"
    rep = head.report
    assert rep["n_votes"] == 6000 and rep["n_heldout"] == 1200
    assert 0.65 < rep["heldout_accuracy"] < 0.9 and rep["heldout_log_loss"] < 0.6
    # Order independence is structural: p(A, B) = 1 − p(B, A).
    np.testing.assert_allclose(head.predict(fa, fb) + head.predict(fb, fa), 1.0)


def test_arrays_ties_and_weights() -> None:
    fa, fb, prefs = synthetic_votes(2000, seed=1)
    tied = prefs.copy()
    tied[:200] = 0  # "no preference" votes count as half a win each way
    head = fit_head(fa.to_numpy(), fb.to_numpy(), tied, feature_names=NAMES, holdout=0)
    assert "heldout_accuracy" not in head.report
    assert np.sign(head.coef[:3]).tolist() == [1.0, -1.0, 1.0]
    m = pairwise_metrics(np.full(4, 0.5), [1, -1, 0, 0])
    assert m["log_loss"] == pytest.approx(np.log(2)) and m["accuracy"] == 0.5 and m["n"] == 4
    with pytest.raises(ValueError, match="shapes differ"):
        fit_head(fa, fb[:10], prefs)
    with pytest.raises(ValueError, match="missing column"):
        fit_head(fa, fb, prefs, feature_names=["sharp", "nope"])


def test_grouped_holdout_and_save_load(tmp_path: Path) -> None:
    fa, fb, prefs = synthetic_votes(1000, seed=2)
    groups = np.repeat([f"content{i}" for i in range(10)], 100)
    head = fit_head(fa, fb, prefs, groups=groups)
    assert head.report["heldout_by"] == "group" and head.report["n_heldout"] == 200
    path = head.save(tmp_path / "head.json")
    back = Head.load(path)
    assert back.version == head.version
    np.testing.assert_allclose(back.predict(fa, fb), head.predict(fa, fb))
    data = json.loads(path.read_text())
    data["params"]["coef"][0] += 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="edited"):
        Head.load(path)


def test_mlp_head_learns_a_nonlinear_utility() -> None:
    pytest.importorskip("torch", reason="the MLP head is fitted with torch")
    rng = np.random.default_rng(3)
    n = 3000
    xa, xb = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))

    def g(x):  # quality peaks at x0 = 0 (think exposure): not monotone, so linear fails
        return -1.5 * x[:, 0] ** 2 + x[:, 1]

    prefs = np.where(rng.random(n) < 1 / (1 + np.exp(-(g(xa) - g(xb)))), 1, -1)
    mlp = fit_head(xa, xb, prefs, kind="mlp", hidden=8, epochs=300, l2=1e-4)
    lin = fit_head(xa, xb, prefs)
    assert mlp.report["heldout_accuracy"] > lin.report["heldout_accuracy"] + 0.05
    assert mlp.report["heldout_accuracy"] > 0.7
    # Stored as plain numbers, used through numpy: symmetric and loadable without torch.
    back = Head.from_dict(json.loads(json.dumps(mlp.to_dict())))
    np.testing.assert_allclose(back.predict(xa, xb) + back.predict(xb, xa), 1.0)


# --------------------------------------------------------------------------- cross-fitting

CONDS = ("A", "B", "C", "D", "E")
TRUE_U = {"A": 1.0, "B": 0.0, "C": 0.5, "D": -0.5, "E": -1.0}


def condition_votes(seed: int = 0, per_pair: int = 60, flip: tuple[str, str] = ("A", "B")):
    """Votes whose direction follows feature 'q', except on the pair ``flip`` (votes reversed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in combinations(CONDS, 2):
        for _ in range(per_pair):
            qa = TRUE_U[a] + rng.normal(scale=0.3)
            qb = TRUE_U[b] + rng.normal(scale=0.3)
            pref = 1 if rng.random() < 1 / (1 + np.exp(-3 * (qa - qb))) else -1
            if pair_key(a, b) == pair_key(*flip):
                pref = -pref
            rows.append((a, b, qa, qb, pref))
    frame = pd.DataFrame(rows, columns=["cond_a", "cond_b", "qa", "qb", "pref"])
    return frame


def test_cross_fitting_never_uses_a_pairs_own_votes() -> None:
    votes = condition_votes()
    fa, fb = votes[["qa"]].set_axis(["q"], axis=1), votes[["qb"]].set_axis(["q"], axis=1)
    cf = cross_fit_heads(fa, fb, votes["pref"], votes["cond_a"], votes["cond_b"], n_folds=10, holdout=0)
    assert len(cf.heads) == 10  # leave-one-pair-out: 10 condition pairs
    for (x, y), fold in cf.fold_of_pair.items():
        assert (x, y) not in cf.pairs_seen_by(fold)
        assert cf.head_for(y, x) is cf.heads[fold]
    # The head judging (A, B) equals a head fitted on every vote except (A, B)'s...
    own = votes.apply(lambda r: pair_key(r.cond_a, r.cond_b) == ("A", "B"), axis=1).to_numpy()
    ref = fit_head(fa[~own], fb[~own], votes["pref"][~own], holdout=0)
    np.testing.assert_allclose(cf.head_for("A", "B").coef, ref.coef, rtol=1e-6)
    # ...so it follows the feature (A is better), not the reversed votes on that pair,
    assert cf.head_for("A", "B").predict_one({"q": 1.0}, {"q": 0.0}) > 0.5
    # whereas a head that saw them is pulled towards them.
    full = cf.full.coef[0]
    assert cf.head_for("A", "B").coef[0] > full
    # Pairs without votes fall back to the full head (which cannot have seen them either).
    assert cf.head_for("A", "Z") is cf.full
    with pytest.raises(ValueError, match="two condition pairs"):
        cross_fit_heads(fa[:5], fb[:5], votes["pref"][:5], ["A"] * 5, ["B"] * 5)


@dataclass
class DictScorer:
    """A feature scorer whose 'files' are keys of a dict (no video needed)."""

    table: dict[str, dict[str, float]]
    name: str = "dict"
    version: str = "1"

    def features(self, path):
        return dict(self.table[str(path)])

    def aux(self, path):
        return tuple([0.5] * N_AUX)

    def compare_features(self, fa, fb, aa, ab):
        return PairScore(1 / (1 + np.exp(-(fa["q"] - fb["q"]))), aa, ab)

    def compare(self, a, b):
        return self.compare_features(self.features(a), self.features(b), self.aux(a), self.aux(b))


def test_crossfit_scorer_as_tiebreaker_and_vote_join() -> None:
    votes = condition_votes(seed=4, flip=("C", "D"))
    votes["content"] = "k1"
    stim = pd.DataFrame(
        [("k1", c, f"k1/{c}.mp4", TRUE_U[c]) for c in CONDS], columns=["content", "condition", "path", "q"]
    )
    # Join: every vote gets its two stimuli's features (here one feature per stimulus).
    joined = join_votes_features(votes, stim.drop(columns="path"))
    assert joined.n_dropped == 0 and list(joined.features_a.columns) == ["q"]
    assert joined.to_frame().shape[0] == len(votes)
    cf = cross_fit_heads(joined.features_a, joined.features_b, joined.prefs, joined.cond_a, joined.cond_b, holdout=0)
    base = DictScorer({r.path: {"q": r.q} for r in stim.itertuples()})
    scorer = CrossFitScorer(base, cf)
    assert isinstance(scorer.for_pair("C", "D"), HeadScorer)
    tb = make_tiebreaker(scorer, stim[["content", "condition", "path"]])
    scores = tb(["D", "C", "A"])
    assert sorted(scores, key=scores.get, reverse=True) == ["A", "C", "D"]
    assert tb.version.startswith("1+crossfit.")
    ranking = pytest.importorskip("analysis.ranking")
    assert isinstance(tb, ranking.TieBreaker)  # the ranking's tie-break hook accepts it
    # No shared content → nothing to compare: neutral 0.5, never NaN (rankings sort on it).
    lonely = make_tiebreaker(base, {("k1", "A"): "k1/A.mp4", ("k2", "F"): "k1/E.mp4"})
    assert lonely(["A", "F"]) == {"A": 0.5, "F": 0.5}
    agreement = pairwise_agreement(tb.pair_table().assign(content="k1"), votes)
    # (C, D) votes were reversed on purpose: the scorer disagrees with exactly those.
    cd = votes.apply(lambda r: pair_key(r.cond_a, r.cond_b) == ("C", "D"), axis=1)
    in_group = votes["cond_a"].isin(["A", "C", "D"]) & votes["cond_b"].isin(["A", "C", "D"])
    assert agreement["n"] == int(in_group.sum())
    assert agreement["accuracy"] < 1.0 and cd.any()
