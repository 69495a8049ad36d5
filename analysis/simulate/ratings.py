"""Single-stimulus scores from the subject model: :func:`simulate_ratings` and its options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis import methods
from analysis.simulate import common
from analysis.simulate.common import GOLD_CONDITION, REFERENCE_CONDITION, Schedule, Simulation


@dataclass(frozen=True)
class RatingsTruth:
    """The conditions and the true quality of every stimulus (all sds in scale points).

    ``None`` means a default relative to the scale's quarter-range ``u`` (1 point on
    5-point scales, 25 on ``slider100``): conditions 0.6u, contents 0.3u, interaction 0.1u.

    Attributes
    ----------
    n_conditions : int
        Number of conditions (named ``C01…``; ``acr-hr`` adds ``REF``).
    true_scores : sequence of float, optional
        Condition offsets in scale points (centred by the simulation); drawn from
        ``N(0, condition_sd²)`` when omitted. Kept as a tuple.
    condition_sd, content_sd, stimulus_sd : float, optional
        Sd of the condition offsets, the content effects and the (content, condition)
        interaction.
    """

    n_conditions: int = 12
    true_scores: Sequence[float] | None = None
    condition_sd: float | None = None
    content_sd: float | None = None
    stimulus_sd: float | None = None

    def __post_init__(self) -> None:
        if self.true_scores is not None and not isinstance(self.true_scores, tuple):
            object.__setattr__(self, "true_scores", tuple(self.true_scores))


@dataclass(frozen=True)
class RatingsPanel:
    """The raters of the subject model, and who spams (sds in scale points; ``None``: relative to ``u``).

    Attributes
    ----------
    n_raters : int
        Number of raters (named ``r001…``).
    rater_bias_sd : float, optional
        Sd of the rater bias ``b_r`` (default 0.3u).
    rater_inconsistency : float, optional
        Mean per-rater inconsistency ``v_r`` (default 0.5u).
    rater_inconsistency_cv : float
        Coefficient of variation of the raters' inconsistencies (0: all equal).
    rater_scale_sd : float
        Sd of the log of each rater's stretch ``c_r`` of the quality range (0: none).
    spammer_fraction : float
        Share of raters that answer uniformly at random (and fast).
    gold_slip : float
        Probability that an honest rater answers a gold clip one step off.
    """

    n_raters: int = 30
    rater_bias_sd: float | None = None
    rater_inconsistency: float | None = None
    rater_inconsistency_cv: float = 0.5
    rater_scale_sd: float = 0.0
    spammer_fraction: float = 0.0
    gold_slip: float = 0.05


@dataclass(frozen=True)
class RatingsDesign(Schedule):
    """What the study asks: the test method, contents and how many ratings.

    Also has the keyword-only fields of :class:`~analysis.simulate.Schedule`
    (``session_size, repeats_per_rater, gold_per_rater, clip_ms, study``); ratings repeats
    show the same stimulus later in the same session, gold clips are condition ``GOLD``
    with ``gold_expected`` = the requested answer.

    Attributes
    ----------
    n_contents : int
        Number of contents; the stimuli are every (content, condition).
    method : {"acr5", "acr-hr", "dcr5", "slider100"}
        ``acr-hr`` adds a hidden reference condition ``REF`` (the source, rated like any
        clip, 0.5u above the best condition).
    n_votes : int, optional
        Number of regular ratings, spread evenly over raters and uniformly over stimuli;
        ``None`` means every rater rates every stimulus once.
    """

    n_contents: int = 20
    method: Literal["acr5", "acr-hr", "dcr5", "slider100"] = "acr5"
    n_votes: int | None = None


def _rating_defaults(method: str) -> tuple[float, float, float]:
    """(low, high, unit) of a ratings method's scale; ``unit`` is a quarter of the range."""
    s = methods.METHODS[method]
    return float(s.low), float(s.high), (s.high - s.low) / 4.0


def _check_options(panel: RatingsPanel, design: RatingsDesign, n_conditions: int) -> None:
    entry = methods.METHODS.get(design.method)
    common.check(entry is not None and not entry.pairwise, f"method must be a ratings method, got {design.method!r}")
    common.check(n_conditions >= 1 and design.n_contents >= 1 and panel.n_raters >= 1, "sizes must be positive")
    common.check(0 <= panel.spammer_fraction <= 1, "spammer_fraction must be in [0, 1]")
    common.check(min(panel.rater_scale_sd, panel.rater_inconsistency_cv) >= 0,
          "rater_scale_sd and rater_inconsistency_cv must be >= 0")


def _resolved(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _quality(rng: np.random.Generator, truth: RatingsTruth, method: str, n_contents: int,
             sds: dict[str, float]) -> tuple[list[str], np.ndarray]:
    """Condition names (``REF`` appended for ``acr-hr``) and the true quality, shape (contents, conditions)."""
    low, high, unit = _rating_defaults(method)
    cond_names = list(common.names("C", truth.n_conditions, 2))
    offsets = common.centred_truth(rng, truth.true_scores, truth.n_conditions, sds["condition_sd"])
    if methods.METHODS[method].reference == "hidden":
        cond_names.append(REFERENCE_CONDITION)
        offsets = np.append(offsets, offsets.max() + 0.5 * unit)
    content_eff = rng.normal(0.0, sds["content_sd"], n_contents)
    interaction = rng.normal(0.0, sds["stimulus_sd"], (n_contents, len(cond_names)))
    return cond_names, (low + high) / 2 + offsets[None, :] + content_eff[:, None] + interaction


def _regular_trials(rng: np.random.Generator, n_raters: int, n_stim: int, n_votes: int | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rater and stimulus of every regular rating."""
    if n_votes is None:
        # Each rater sees every stimulus once, in a random order.
        return np.repeat(np.arange(n_raters), n_stim), rng.random((n_raters, n_stim)).argsort(axis=1).ravel()
    common.check(n_votes >= 1, "n_votes must be positive")
    return rng.permutation(np.arange(n_votes) % n_raters), rng.integers(0, n_stim, n_votes)


def _gold_scores(rng: np.random.Generator, method: str, n_gold: int, slip: float) -> tuple[np.ndarray, np.ndarray]:
    """Gold: "select N" cards, N inside the scale and away from its ends; (expected, answered)."""
    low, high, _ = _rating_defaults(method)
    step = 1.0  # every ratings scale here is an integer scale
    g_levels = np.arange(10.0, 91.0, 10.0) if methods.METHODS[method].slider else np.arange(low + step, high, step)
    g_expected = rng.choice(g_levels, n_gold) if n_gold else np.empty(0)
    g_score = g_expected + np.where(rng.random(n_gold) < slip, rng.choice([-step, step], n_gold), 0.0)
    return g_expected, np.clip(g_score, low, high)


def simulate_ratings(
    truth: RatingsTruth | None = None,
    panel: RatingsPanel | None = None,
    design: RatingsDesign | None = None,
    *,
    seed: int | None = 0,
) -> Simulation:
    """Simulate a single-stimulus study from the subject model.

    ``score = round(clip(q_{content,cond} + b_r + v_r · ε))`` with stimulus quality
    ``q = mid + condition offset + content effect + interaction``, rater bias
    ``b_r ~ N(0, rater_bias_sd²)`` and per-rater inconsistency
    ``v_r = rater_inconsistency · Gamma(1/cv², cv²)`` (mean ``rater_inconsistency``,
    coefficient of variation ``cv = rater_inconsistency_cv``). With ``rater_scale_sd > 0``
    rater r sees ``mid + c_r·(q − mid)`` instead of ``q``, ``c_r = exp(N(0, rater_scale_sd²))``:
    some raters use the whole scale, others stay near its middle.

    Parameters
    ----------
    truth : RatingsTruth, optional
        Conditions and stimulus quality (default ``RatingsTruth()``).
    panel : RatingsPanel, optional
        Raters, their bias, inconsistency and stretch, and the spammers (default
        ``RatingsPanel()``).
    design : RatingsDesign, optional
        Test method, contents, ratings, sessions, repeats and gold (default ``RatingsDesign()``).
    seed : int or None
        Seed of the random generator.

    Returns
    -------
    Simulation
        With ``stimuli``, the true quality of every (content, condition).

    Raises
    ------
    ValueError
        Options out of range.
    """
    truth = truth if truth is not None else RatingsTruth()
    panel = panel if panel is not None else RatingsPanel()
    design = design if design is not None else RatingsDesign()
    _check_options(panel, design, truth.n_conditions)
    rng = np.random.default_rng(seed)
    low, high, unit = _rating_defaults(design.method)
    sds = {"rater_bias_sd": _resolved(panel.rater_bias_sd, 0.3 * unit),
           "rater_inconsistency": _resolved(panel.rater_inconsistency, 0.5 * unit),
           "condition_sd": _resolved(truth.condition_sd, 0.6 * unit),
           "content_sd": _resolved(truth.content_sd, 0.3 * unit),
           "stimulus_sd": _resolved(truth.stimulus_sd, 0.1 * unit)}
    cond_names, quality = _quality(rng, truth, design.method, design.n_contents, sds)
    n_cond, n_raters = len(cond_names), panel.n_raters
    mid = (low + high) / 2

    spammer = common.draw_spammers(rng, n_raters, panel.spammer_fraction)
    bias = rng.normal(0.0, sds["rater_bias_sd"], n_raters)
    cv = float(panel.rater_inconsistency_cv)
    incons = sds["rater_inconsistency"] * (rng.gamma(1.0 / cv**2, cv**2, n_raters) if cv > 0 else np.ones(n_raters))
    stretch = common.lognormal(rng, panel.rater_scale_sd, n_raters)

    rater_of, stim_of = _regular_trials(rng, n_raters, design.n_contents * n_cond, design.n_votes)
    rows = common.layout_rows(rng, rater_of, n_raters, design)
    stim_main = np.concatenate([stim_of, stim_of[rows.repeated]])
    content_idx, cond_idx = stim_main // n_cond, stim_main % n_cond
    r_main = rows.rater[:rows.n_main]
    seen = mid + stretch[r_main] * (quality[content_idx, cond_idx] - mid)
    latent = seen + bias[r_main] + incons[r_main] * rng.standard_normal(len(r_main))
    score = np.clip(np.round(latent), low, high)

    g_expected, g_score = _gold_scores(rng, design.method, rows.n_gold, panel.gold_slip)
    score_all = np.concatenate([score, g_score])
    spam_rows = spammer[rows.rater]
    score_all[spam_rows] = rng.integers(int(low), int(high) + 1, int(spam_rows.sum()))

    contents = common.names("v", design.n_contents, 4)
    content_ext, code_gold = common.gold_contents(rng, contents, design.gold_per_rater, rows.n_gold)
    rater_names = common.names("r", n_raters, 3)
    meta = common.assemble(rng, rows, rater_names, spammer, design.clip_ms)
    cols = {
        "content": common.strings(content_ext, np.concatenate([content_idx, code_gold])),
        "cond": common.strings(np.array([*cond_names, GOLD_CONDITION], dtype=object),
                        np.concatenate([cond_idx, np.full(rows.n_gold, n_cond)])),
        "score": score_all,
        "gold_expected": common.nullable(np.concatenate([np.zeros(rows.n_main), g_expected]).astype(np.int64),
                                  np.arange(len(score_all)) < rows.n_main),
    }
    votes = common.tidy_frame(cols, "ratings", meta, design.study, design.method)
    cond_quality = quality.mean(axis=0)
    return Simulation(
        votes=votes,
        truth=pd.DataFrame({"condition": cond_names, "score": cond_quality - cond_quality.mean(),
                            "quality": cond_quality}),
        raters=pd.DataFrame({"rater": pd.array(rater_names, dtype="string"), "spammer": spammer, "bias": bias,
                             "inconsistency": incons, "scale": stretch}),
        stimuli=pd.DataFrame({"content": np.repeat(contents, n_cond),
                              "cond": np.tile(np.array(cond_names, dtype=object), design.n_contents),
                              "quality": quality.ravel()}),
        params=_params(truth, panel, design, sds, seed),
    )


def _params(truth: RatingsTruth, panel: RatingsPanel, design: RatingsDesign, sds: dict[str, float],
            seed: int | None) -> dict[str, Any]:
    """Every parameter, flat (the option fields by name), with the defaults of the sds resolved."""
    return {
        "kind": "ratings", "n_conditions": truth.n_conditions, "n_contents": design.n_contents,
        "n_raters": panel.n_raters, "method": design.method, "n_votes": design.n_votes,
        "rater_bias_sd": sds["rater_bias_sd"], "rater_inconsistency": sds["rater_inconsistency"],
        "rater_inconsistency_cv": panel.rater_inconsistency_cv, "rater_scale_sd": panel.rater_scale_sd,
        "condition_sd": sds["condition_sd"], "content_sd": sds["content_sd"], "stimulus_sd": sds["stimulus_sd"],
        "spammer_fraction": panel.spammer_fraction, "repeats_per_rater": design.repeats_per_rater,
        "gold_per_rater": design.gold_per_rater, "gold_slip": panel.gold_slip,
        "true_scores": None if truth.true_scores is None else list(map(float, truth.true_scores)),
        "reference": REFERENCE_CONDITION if methods.METHODS[design.method].reference == "hidden" else None,
        "session_size": design.session_size, "clip_ms": design.clip_ms, "study": design.study, "seed": seed,
    }
