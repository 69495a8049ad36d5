"""Side-by-side votes from a Bradley–Terry or Thurstone rater: :func:`simulate_pairwise` and its options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from analysis import methods
from analysis.simulate import common
from analysis.simulate.common import GOLD_DEGRADED, GOLD_REFERENCE, Rows, Schedule, Simulation

#: Default decision factors a pairwise rater may give.
DEFAULT_REASONS = ("colours", "brightness", "skin tone")


def _as_tuple(obj: Any, name: str) -> None:
    """Store a sequence field of a frozen options object as a tuple (arrays and lists are not hashable)."""
    value = getattr(obj, name)
    if value is not None and not isinstance(value, tuple):
        object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class PairwiseTruth:
    """The conditions, their true scores and how a latent difference becomes an answer.

    Attributes
    ----------
    n_conditions : int
        Number of conditions (named ``C01…``).
    true_scores : sequence of float, optional
        True log-strengths of the conditions (centred by the simulation); drawn from
        ``N(0, score_sd²)`` when omitted. Kept as a tuple.
    score_sd : float
        Sd of the drawn true scores.
    model : {"bt", "thurstone"}
        Latent noise: standard logistic (Bradley–Terry) or standard normal (Thurstone
        case V without rescaling, so BT fits give scores ≈ 1.7 × the truth).
    tie_rate : float
        Share of "no preference" answers for two equal conditions.
    """

    n_conditions: int = 12
    true_scores: Sequence[float] | None = None
    score_sd: float = 1.0
    model: Literal["bt", "thurstone"] = "bt"
    tie_rate: float = 0.2

    def __post_init__(self) -> None:
        _as_tuple(self, "true_scores")


@dataclass(frozen=True)
class PairwisePanel:
    """The raters: how each one sees and answers, and who spams.

    Attributes
    ----------
    n_raters : int
        Number of raters (named ``r001…``).
    rater_noise : float
        Sd of each rater's own perturbation of the condition scores (fixed per rater);
        > 0 makes a rater's votes correlated (cluster effect).
    rater_scale_sd, rater_decisiveness_sd : float
        Sd of the log of each rater's discrimination ``c_r`` and decisiveness ``k_r``
        (log-normal, median 1; 0 gives every rater 1).
    rater_position_sd : float
        Sd of each rater's own lean ``l_r`` to the left clip (added to ``position_bias``).
    position_bias : float
        Latent advantage of the clip shown on the left.
    spammer_fraction : float
        Share of raters that answer at random (``spammer_style="random"``) or always
        strongly left (``"left"``).
    spammer_style : {"random", "left"}
    gold_slip : float
        Probability that an honest rater answers a gold trial one step off.
    """

    n_raters: int = 50
    rater_noise: float = 0.0
    rater_scale_sd: float = 0.0
    rater_decisiveness_sd: float = 0.0
    rater_position_sd: float = 0.0
    position_bias: float = 0.0
    spammer_fraction: float = 0.0
    spammer_style: Literal["random", "left"] = "random"
    gold_slip: float = 0.03


@dataclass(frozen=True)
class PairwiseDesign(Schedule):
    """What the study asks: the test method, contents, votes, compared pairs and decision factors.

    Also has the keyword-only fields of :class:`~analysis.simulate.Schedule`
    (``session_size, repeats_per_rater, gold_per_rater, clip_ms, study``).

    Attributes
    ----------
    n_contents : int
        Number of contents (named ``v0001…``).
    n_votes : int
        Regular trials (repeats and gold come on top), spread evenly over raters and
        uniformly over pairs and contents.
    method : {"pc5", "2afc", "ccr7"}
        Test method; ``2afc`` has no "no preference" and requires ``tie_rate=0``.
    pairs : sequence of (cond_a, cond_b), optional
        The compared pairs (names from ``C01…``); all pairs when omitted. Kept as a tuple.
    reasons : sequence of str
        Decision factors; each non-tie vote names each factor with probability
        ``reason_rate`` (several joined by ``;``).
    reason_rate : float
    """

    n_contents: int = 50
    n_votes: int = 10_000
    method: Literal["pc5", "2afc", "ccr7"] = "pc5"
    pairs: Sequence[tuple[str, str]] | None = None
    reasons: Sequence[str] = DEFAULT_REASONS
    reason_rate: float = 0.25

    def __post_init__(self) -> None:
        if self.pairs is not None:
            object.__setattr__(self, "pairs", tuple(tuple(p) for p in self.pairs))
        _as_tuple(self, "reasons")


def _latent_cdf_inv(model: str, p: np.ndarray) -> np.ndarray:
    return special.logit(p) if model == "bt" else stats.norm.ppf(p)


def pairwise_thresholds(model: str, method: str, tie_rate: float) -> np.ndarray:
    """Thresholds ``t_0 < t_1 < …`` on the latent difference for each answer category.

    ``|z| < t_0`` is "no preference"; ``t_{k-1} ≤ |z| < t_k`` is strength ``k``. At
    ``z``'s centre the tie category gets ``tie_rate`` and every other category an equal
    share of the rest.

    Parameters
    ----------
    model : {"bt", "thurstone"}
        Latent noise: logistic (``"bt"``) or standard normal.
    method : str
        A pairwise test method of :data:`analysis.methods.METHODS` (its top strength sets the
        number of thresholds).
    tie_rate : float
        Probability of "no preference" at zero difference.

    Returns
    -------
    ndarray, shape (top,)
        Increasing thresholds, in units of the latent difference.
    """
    top = methods.METHODS[method].high
    probs = 0.5 + tie_rate / 2 + np.arange(top) * (1 - tie_rate) / (2 * top)
    return _latent_cdf_inv(model, probs)


def _check_options(truth: PairwiseTruth, panel: PairwisePanel, design: PairwiseDesign) -> None:
    entry = methods.METHODS.get(design.method)
    common.check(entry is not None and entry.pairwise, f"method must be pairwise, got {design.method!r}")
    common.check(truth.model in ("bt", "thurstone"), f"model must be 'bt' or 'thurstone', got {truth.model!r}")
    common.check(truth.n_conditions >= 2, "need at least 2 conditions")
    common.check(min(design.n_contents, design.n_votes, panel.n_raters) >= 1,
          "n_contents, n_votes and n_raters must be positive")
    common.check(0 <= truth.tie_rate < 1, "tie_rate must be in [0, 1)")
    common.check(entry.allows_zero or truth.tie_rate == 0, f"{design.method} has no 'no preference': set tie_rate=0")
    common.check(0 <= panel.spammer_fraction <= 1, "spammer_fraction must be in [0, 1]")
    common.check(min(panel.rater_scale_sd, panel.rater_decisiveness_sd, panel.rater_position_sd) >= 0,
          "rater sds must be >= 0")
    common.check(panel.spammer_style in ("random", "left"), "spammer_style must be 'random' or 'left'")


def _pair_indices(pairs: Sequence[tuple[str, str]] | None, cond_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Condition indices (a, b) of every compared pair: all pairs, or those named."""
    if pairs is None:
        return np.triu_indices(len(cond_names), k=1)
    index = {c: i for i, c in enumerate(cond_names)}
    unknown = sorted({c for p in pairs for c in p} - set(index))
    common.check(not unknown, f"pairs name unknown conditions {unknown}; names are {cond_names[0]}…")
    ia = np.array([index[a] for a, _ in pairs])
    ib = np.array([index[b] for _, b in pairs])
    common.check(bool(np.all(ia != ib)), "a pair compares a condition with itself")
    return ia, ib


@dataclass(frozen=True, eq=False)
class _Raters:
    """Per-rater draws: spammer mask, own view of the scores, discrimination, decisiveness, lean."""

    spammer: np.ndarray
    view: np.ndarray
    scale: np.ndarray
    decisive: np.ndarray
    lean: np.ndarray


def _draw_raters(rng: np.random.Generator, panel: PairwisePanel, scores: np.ndarray) -> _Raters:
    n = panel.n_raters
    spammer = common.draw_spammers(rng, n, panel.spammer_fraction)
    noise = panel.rater_noise
    view = scores[None, :] + rng.normal(0.0, noise, (n, len(scores))) * (noise > 0)
    scale_r = common.lognormal(rng, panel.rater_scale_sd, n)
    decisive_r = common.lognormal(rng, panel.rater_decisiveness_sd, n)
    sd = panel.rater_position_sd
    lean_r = rng.normal(0.0, sd, n) if sd > 0 else np.zeros(n)
    return _Raters(spammer=spammer, view=view, scale=scale_r, decisive=decisive_r, lean=lean_r)


def _model_answers(rng: np.random.Generator, truth: PairwiseTruth, panel: PairwisePanel, method: str,
                   raters: _Raters, rows: Rows, ab: tuple[np.ndarray, np.ndarray], left: np.ndarray) -> np.ndarray:
    """Answers of regular trials and repeats: latent difference → category."""
    entry = methods.METHODS[method]
    r, a, b = rows.rater[:rows.n_main], ab[0][:rows.n_main], ab[1][:rows.n_main]
    side = np.where(left[:rows.n_main], 1.0, -1.0)
    noise = rng.logistic(size=rows.n_main) if truth.model == "bt" else rng.standard_normal(rows.n_main)
    z = (raters.scale[r] * (raters.view[r, a] - raters.view[r, b])
         + (panel.position_bias + raters.lean[r]) * side + noise)
    thresholds = pairwise_thresholds(truth.model, method, truth.tie_rate)
    strength = np.searchsorted(thresholds, raters.decisive[r] * np.abs(z), side="right")
    pref = (np.sign(z) * np.minimum(strength, entry.high)).astype(np.int64)
    if not entry.allows_zero:
        pref = np.where(pref == 0, np.where(z >= 0, 1, -1), pref)
    return pref


def _gold_and_spam(rng: np.random.Generator, panel: PairwisePanel, method: str, pref: np.ndarray,
                   spam_rows: np.ndarray, left: np.ndarray, n_gold: int) -> np.ndarray:
    """Every answer: the model's, then gold answers, then spammers overwrite everything they answered."""
    entry = methods.METHODS[method]
    top = entry.high
    # Gold answers: correct is the strongest preference for A (the reference).
    g_pref = np.full(n_gold, top, dtype=np.int64)
    slip = rng.random(n_gold) < panel.gold_slip
    g_pref[slip] = top - 1 if entry.allows_zero or top > 1 else top
    pref_all = np.concatenate([pref, g_pref])
    if panel.spammer_style == "random":
        values = np.arange(-top, top + 1)
        values = values[values != 0] if not entry.allows_zero else values
        pref_all[spam_rows] = rng.choice(values, int(spam_rows.sum()))
    else:
        pref_all[spam_rows] = top * np.where(left[spam_rows], 1, -1)
    return pref_all


def _reason_column(rng: np.random.Generator, design: PairwiseDesign, pref: np.ndarray) -> Any:
    """Each factor named independently, only when a preference was expressed."""
    reasons = design.reasons
    picks = rng.random((len(pref), len(reasons))) < design.reason_rate
    # Reason code = bit mask of the factors named; 0 (none named, or a tie) is null.
    code = np.where(pref != 0, picks @ (1 << np.arange(len(reasons))), 0)
    combos = np.array(
        [";".join(r for k, r in enumerate(reasons) if c >> k & 1) or None for c in range(1 << len(reasons))],
        dtype=object,
    )
    return common.strings(combos, code)


def simulate_pairwise(
    truth: PairwiseTruth | None = None,
    panel: PairwisePanel | None = None,
    design: PairwiseDesign | None = None,
    *,
    seed: int | None = 0,
) -> Simulation:
    """Simulate a side-by-side study with known condition scores.

    Parameters
    ----------
    truth : PairwiseTruth, optional
        Conditions, true scores, latent noise and tie share (default ``PairwiseTruth()``).
    panel : PairwisePanel, optional
        Raters, their effects and the spammers (default ``PairwisePanel()``).
    design : PairwiseDesign, optional
        Test method, contents, votes, pairs, sessions, repeats, gold and decision factors
        (default ``PairwiseDesign()``).
    seed : int or None
        Seed of the random generator.

    Returns
    -------
    Simulation

    Raises
    ------
    ValueError
        Options that do not fit together (e.g. ``2afc`` with ``tie_rate > 0``).
    """
    truth = truth if truth is not None else PairwiseTruth()
    panel = panel if panel is not None else PairwisePanel()
    design = design if design is not None else PairwiseDesign()
    _check_options(truth, panel, design)
    rng = np.random.default_rng(seed)
    n_cond, n_raters, n_votes = truth.n_conditions, panel.n_raters, design.n_votes

    cond_names = common.names("C", n_cond, 2)
    scores = common.centred_truth(rng, truth.true_scores, n_cond, truth.score_sd)
    ia, ib = _pair_indices(design.pairs, cond_names)
    raters = _draw_raters(rng, panel, scores)

    # Regular trials, then repeats (sides swapped) and gold trials.
    rater_of = rng.permutation(np.arange(n_votes) % n_raters)
    pair_of = rng.integers(0, len(ia), n_votes)
    content_of = rng.integers(0, design.n_contents, n_votes)
    rows = common.layout_rows(rng, rater_of, n_raters, design)
    orig, n_gold = rows.repeated, rows.n_gold
    a, b = ia[pair_of], ib[pair_of]
    # Gold rows index past the real conditions.
    code_a = np.concatenate([a, a[orig], np.full(n_gold, n_cond)])
    code_b = np.concatenate([b, b[orig], np.full(n_gold, n_cond + 1)])
    left_a = rng.random(n_votes) < 0.5
    left = np.concatenate([left_a, ~left_a[orig], rng.random(n_gold) < 0.5])

    pref = _model_answers(rng, truth, panel, design.method, raters, rows, (code_a, code_b), left)
    pref_all = _gold_and_spam(rng, panel, design.method, pref, raters.spammer[rows.rater], left, n_gold)
    reason = _reason_column(rng, design, pref_all)
    contents, code_content = common.gold_contents(rng, common.names("v", design.n_contents, 4),
                                                  design.gold_per_rater, n_gold)
    n_all = len(pref_all)

    cond_ext = np.array([*cond_names, GOLD_REFERENCE, GOLD_DEGRADED], dtype=object)
    meta = common.assemble(rng, rows, common.names("r", n_raters, 3), raters.spammer, design.clip_ms)
    cols = {
        "content": common.strings(contents, np.concatenate([content_of, content_of[orig], code_content])),
        "cond_a": common.strings(cond_ext, code_a),
        "cond_b": common.strings(cond_ext, code_b),
        "pref": pref_all,
        "reason": reason,
        "shown_left": common.strings(["b", "a"], left.astype(np.int64)),
        "gold_expected": common.nullable(np.full(n_all, methods.METHODS[design.method].high),
                                         np.arange(n_all) < rows.n_main),
    }
    votes = common.tidy_frame(cols, "pairwise", meta, design.study, design.method)
    return Simulation(votes=votes, truth=pd.DataFrame({"condition": list(cond_names), "score": scores}),
                      raters=_rater_frame(common.names("r", n_raters, 3), panel, raters), stimuli=None,
                      params=_params(truth, panel, design, seed))


def _rater_frame(rater_names: np.ndarray, panel: PairwisePanel, raters: _Raters) -> pd.DataFrame:
    return pd.DataFrame(
        {"rater": pd.array(rater_names, dtype="string"), "spammer": raters.spammer,
         "noise": np.full(panel.n_raters, float(panel.rater_noise)), "scale": raters.scale,
         "decisiveness": raters.decisive, "lean": raters.lean}
    )


def _params(truth: PairwiseTruth, panel: PairwisePanel, design: PairwiseDesign, seed: int | None) -> dict[str, Any]:
    """Every parameter, flat (the option fields by name), plus the answer thresholds."""
    return {
        "kind": "pairwise", "n_conditions": truth.n_conditions, "n_contents": design.n_contents,
        "n_votes": design.n_votes, "n_raters": panel.n_raters, "model": truth.model, "method": design.method,
        "tie_rate": truth.tie_rate, "rater_noise": panel.rater_noise, "rater_scale_sd": panel.rater_scale_sd,
        "rater_decisiveness_sd": panel.rater_decisiveness_sd, "rater_position_sd": panel.rater_position_sd,
        "position_bias": panel.position_bias, "spammer_fraction": panel.spammer_fraction,
        "spammer_style": panel.spammer_style, "repeats_per_rater": design.repeats_per_rater,
        "gold_per_rater": design.gold_per_rater, "gold_slip": panel.gold_slip, "score_sd": truth.score_sd,
        "true_scores": None if truth.true_scores is None else list(map(float, truth.true_scores)),
        "pairs": None if design.pairs is None else list(design.pairs), "reasons": tuple(design.reasons),
        "reason_rate": design.reason_rate, "session_size": design.session_size, "clip_ms": design.clip_ms,
        "study": design.study, "seed": seed,
        "thresholds": pairwise_thresholds(truth.model, design.method, truth.tie_rate).tolist(),
    }
