"""Synthetic studies with a known truth, emitted as valid tidy frames.

Two generators, both fully vectorised (350,000 votes in a fraction of a second):

* :func:`simulate_pairwise` — side-by-side votes (``pc5``, ``2afc``, ``ccr7``) from a
  Bradley–Terry or Thurstone rater;
* :func:`simulate_ratings` — single-stimulus scores (``acr5``, ``acr-hr``, ``dcr5``,
  ``slider100``) from the subject model ``score = quality + bias_r + inconsistency_r · ε``
  (the model of SUREAL / ITU-T P.913 §12), rounded and clipped to the scale; optionally
  each rater stretches or compresses the quality range (``rater_scale_sd``).

Both return a :class:`Simulation`: the votes, the truth and the parameters.

The pairwise response model
---------------------------
A rater ``r`` comparing A (shown on the ``left`` or right) with B forms a latent
difference ``z = c_r·[(s_A + u_rA) - (s_B + u_rB)] ± (position_bias + l_r) + ε``, with
``u`` the rater's own view of the conditions (sd ``rater_noise``, constant over a rater's
votes, which is what makes a rater's votes correlated), ``c_r`` the rater's
discrimination (``rater_scale_sd``), ``l_r`` their own lean to the left clip
(``rater_position_sd``) and ``ε`` standard logistic (``"bt"``) or standard normal
(``"thurstone"``). The answer is a category of ``k_r·z``: "no preference" when
``|k_r·z| < t_0``, otherwise the side of ``z`` and a strength chosen by thresholds
``t_0 < t_1 < …``; ``k_r`` is the rater's decisiveness (``rater_decisiveness_sd``),
which moves answers between "no preference", weak and strong without changing their
side. The thresholds give, at ``z``'s centre 0, the tie share ``tie_rate`` and equal
shares to every non-tie category. With the logistic ε (and every ``c_r = k_r = 1``) this
is exactly the Rao–Kupper model (``P(A ≻ B) = σ(s_A − s_B − t_0)``), so a Rao–Kupper (or,
without ties, plain BT) fit recovers the true scores unbiasedly.

Special rows
------------
* **Consistency repeats** (``repeats_per_rater``): an earlier trial of the same session
  shown again at the end of that session with the sides swapped; ``repeat_of`` holds
  the trial number of the first showing; the answer is drawn afresh.
* **Gold trials** (``gold_per_rater``): pairwise gold compares ``GOLD_REFERENCE`` with
  ``GOLD_DEGRADED`` (``gold_expected`` = strongest preference for A); ratings gold is a
  clip of condition ``GOLD_CONDITION`` with a burned-in "select N" card
  (``gold_expected`` = N). Honest raters answer correctly (or one step off with
  probability ``gold_slip``); spammers answer at random. Gold contents are ``gold01…``.
* **Spammers** (``spammer_fraction``): answer uniformly at random (``"random"``) or
  always strongly for the left clip (``"left"``, pairwise), and answer fast.

Timing columns: ``watch_ms`` is the played time (clips are ``clip_ms`` long; honest
raters sometimes replay), ``answered_at`` advances through each session, and an extra
column ``answer_ms`` (time from unlock to answer) is added; spammers answer in ~250 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import special, stats

from analysis import frames

#: Condition names of the gold trials (never mixed with real conditions).
GOLD_REFERENCE = "GOLD_REFERENCE"
GOLD_DEGRADED = "GOLD_DEGRADED"
GOLD_CONDITION = "GOLD"
#: Name of the hidden reference condition of an ``acr-hr`` simulation.
REFERENCE_CONDITION = "REF"
#: Default decision factors a pairwise rater may give.
DEFAULT_REASONS = ("colours", "brightness", "skin tone")

_EPOCH = np.datetime64("2025-03-01T09:00:00", "ms")


@dataclass(frozen=True, eq=False)
class Simulation:
    """A synthetic study and the truth behind it.

    Attributes
    ----------
    votes : DataFrame
        A valid tidy frame (pairwise or ratings layout, see :mod:`analysis.frames`),
        plus an extra ``answer_ms`` column.
    truth : DataFrame
        One row per condition: ``condition`` and ``score`` (true score, centred to mean 0
        over the conditions). Ratings add ``quality`` (the mean true quality on the
        scale). Pairwise ``score`` is on the log-strength scale of the generating model.
    raters : DataFrame
        One row per rater: ``rater``, ``spammer`` and, for ratings, ``bias`` and
        ``inconsistency`` (the per-rater sd); for pairwise ``noise`` (the sd of the
        rater's own view of the scores).
    stimuli : DataFrame or None
        Ratings only: ``content, cond, quality`` (true quality of every stimulus).
    params : dict
        Every parameter used, defaults resolved.
    """

    votes: pd.DataFrame
    truth: pd.DataFrame
    raters: pd.DataFrame
    stimuli: pd.DataFrame | None
    params: dict[str, Any] = field(default_factory=dict)


def _names(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def condition_names(n: int) -> list[str]:
    """``C01, C02, …`` (wider when ``n`` needs it).

    Parameters
    ----------
    n : int
        Number of conditions.

    Returns
    -------
    list of str
        ``n`` names, zero-padded to at least two digits.
    """
    return list(_names("C", n, 2))


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _lognormal(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    """Per-rater factors ``exp(N(0, sd²))``; ones without a draw when ``sd`` is 0 (seeded streams unchanged)."""
    return np.exp(rng.normal(0.0, sd, n)) if sd > 0 else np.ones(n)


def _spread(n_items: int, n_per: np.ndarray) -> np.ndarray:
    """Owner index of ``sum(n_per)`` slots: item i repeated n_per[i] times."""
    return np.repeat(np.arange(n_items), n_per)


def _sessions(rng: np.random.Generator, rater_of: np.ndarray, n_raters: int, session_size: int):
    """Session number (per rater) and in-session position of regular trials.

    Trials are shuffled, then sorted by rater, so each rater's trials are chunked into
    consecutive sessions of ``session_size``.
    """
    order = np.argsort(rater_of, kind="stable")
    counts = np.bincount(rater_of, minlength=n_raters)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(len(rater_of), dtype=np.int64)
    pos[order] = np.arange(len(rater_of)) - np.repeat(starts, counts)
    return pos // session_size, pos % session_size, counts


def _pick_per_rater(rng, rater_of: np.ndarray, n_raters: int, k: int) -> np.ndarray:
    """Indices of up to ``k`` random rows per rater (without replacement), vectorised."""
    if k <= 0 or len(rater_of) == 0:
        return np.empty(0, dtype=np.int64)
    # One argsort on rater + a random fraction = random order within each rater.
    order = np.argsort(rater_of + rng.random(len(rater_of)))
    counts = np.bincount(rater_of, minlength=n_raters)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    return order[rank < k]


def _assemble(
    rng: np.random.Generator,
    n_raters: int,
    rater_names: np.ndarray,
    spammer: np.ndarray,
    rater_of: np.ndarray,
    session_of: np.ndarray,
    order_key: np.ndarray,
    original: np.ndarray,
    clip_ms: int,
) -> dict[str, np.ndarray]:
    """Trial numbers, sessions, repeat links and timing for all rows at once.

    ``original`` is, for a repeat row, the row index of its first showing (else -1).
    Returns columns in row order (the caller's row order is kept).
    """
    n = len(rater_of)
    order = np.lexsort((order_key, session_of, rater_of))
    r_s, s_s = rater_of[order], session_of[order]
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = (r_s[1:] != r_s[:-1]) | (s_s[1:] != s_s[:-1])
    sess_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    trial_sorted = np.arange(n) - sess_start + 1
    trial = np.empty(n, dtype=np.int64)
    trial[order] = trial_sorted
    repeat_of = np.full(n, -1, dtype=np.int64)
    rep = original >= 0
    repeat_of[rep] = trial[original[rep]]

    spam = spammer[rater_of]
    replays = rng.poisson(0.3, n) * ~spam
    watch_ms = (clip_ms * (1 + replays) + rng.integers(0, 400, n)).astype(np.int64)
    answer_ms = np.where(spam, rng.lognormal(np.log(250), 0.3, n), rng.lognormal(np.log(2500), 0.5, n))
    answer_ms = np.round(answer_ms).astype(np.int64)
    stalls = rng.poisson(0.02, n).astype(np.int64)
    # Sessions start at random times within four weeks; each trial adds its duration.
    n_sessions = int(new_session.sum())
    sess_id = np.cumsum(new_session) - 1
    start = rng.integers(0, 28 * 24 * 3600 * 1000, n_sessions)
    step = (watch_ms + answer_ms + 1500)[order]
    csum = np.cumsum(step)
    elapsed_sorted = csum - csum[sess_start] + step[sess_start]
    at_sorted = _EPOCH + (start[sess_id] + elapsed_sorted).astype("timedelta64[ms]")
    answered_at = np.empty(n, dtype="datetime64[ms]")
    answered_at[order] = at_sorted

    # Name each (rater, session) once, then index: far cheaper than per-row formatting.
    per_rater = int(session_of.max(initial=0)) + 1
    code = rater_of * per_rater + session_of
    uniq, inverse = np.unique(code, return_inverse=True)
    width = max(2, len(str(per_rater)))
    per_session = np.array(
        [f"{rater_names[c // per_rater]}-s{c % per_rater + 1:0{width}d}" for c in uniq], dtype=object
    )
    session_names = _strings(per_session, inverse)
    return {
        "rater": _strings(rater_names, rater_of),
        "session": session_names,
        "trial": trial,
        "repeat_of": repeat_of,
        "watch_ms": watch_ms,
        "answer_ms": answer_ms,
        "stalls": stalls,
        "answered_at": answered_at,
    }


def _strings(names: Sequence[str | None] | np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A string column from a small vocabulary and per-row codes (``None`` names are null).

    Taking from an Arrow array is ~50× faster than building 10⁵ Python strings.
    """
    vocab = pa.array(list(names), type=pa.large_string())
    return pd.array(vocab.take(pa.array(np.asarray(codes, dtype=np.int64))), dtype="string")


def _nullable(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def _frame(cols: dict[str, Any], kind: frames.Kind, meta: dict[str, Any], study: str, scale: str) -> pd.DataFrame:
    """Build the tidy frame with canonical dtypes, then run the schema validator.

    ``cols`` holds the layout's own columns; the per-trial bookkeeping every layout shares
    (rater, session, trial, repeats, timing) comes from ``meta`` (see :func:`_assemble`).
    """
    n_all = len(meta["rater"])
    cols = {
        "study": _strings([study], np.zeros(n_all, dtype=np.int64)),
        "scale": _strings([scale], np.zeros(n_all, dtype=np.int64)),
        **{k: meta[k] for k in ("rater", "session", "trial", "repeat_of", "answered_at", "watch_ms", "stalls",
                                "answer_ms")},
        **cols,
    }
    cols["repeat_of"] = _nullable(cols["repeat_of"], cols["repeat_of"] < 0)
    cols["answered_at"] = pd.to_datetime(cols["answered_at"]).tz_localize("UTC")
    ordered = [*frames.columns_for(kind), "answer_ms"]
    return frames.validate(pd.DataFrame(cols)[ordered], kind)


def _latent_cdf_inv(model: str, p: np.ndarray) -> np.ndarray:
    return special.logit(p) if model == "bt" else stats.norm.ppf(p)


def pairwise_thresholds(model: str, scale: str, tie_rate: float) -> np.ndarray:
    """Thresholds ``t_0 < t_1 < …`` on the latent difference for each answer category.

    ``|z| < t_0`` is "no preference"; ``t_{k-1} ≤ |z| < t_k`` is strength ``k``. At
    ``z``'s centre the tie category gets ``tie_rate`` and every other category an equal
    share of the rest.

    Parameters
    ----------
    model : {"bt", "thurstone"}
        Latent noise: logistic (``"bt"``) or standard normal.
    scale : str
        A pairwise scale of :data:`analysis.frames.SCALES` (its top strength sets the
        number of thresholds).
    tie_rate : float
        Probability of "no preference" at zero difference.

    Returns
    -------
    ndarray, shape (top,)
        Increasing thresholds, in units of the latent difference.
    """
    top = frames.SCALES[scale].high
    probs = 0.5 + tie_rate / 2 + np.arange(top) * (1 - tie_rate) / (2 * top)
    return _latent_cdf_inv(model, probs)


def simulate_pairwise(
    n_conditions: int = 12,
    n_contents: int = 50,
    n_votes: int = 10_000,
    n_raters: int = 50,
    *,
    model: Literal["bt", "thurstone"] = "bt",
    scale: Literal["pc5", "2afc", "ccr7"] = "pc5",
    tie_rate: float = 0.2,
    rater_noise: float = 0.0,
    rater_scale_sd: float = 0.0,
    rater_decisiveness_sd: float = 0.0,
    rater_position_sd: float = 0.0,
    position_bias: float = 0.0,
    spammer_fraction: float = 0.0,
    spammer_style: Literal["random", "left"] = "random",
    repeats_per_rater: int = 0,
    gold_per_rater: int = 0,
    gold_slip: float = 0.03,
    true_scores: Sequence[float] | np.ndarray | None = None,
    score_sd: float = 1.0,
    pairs: Sequence[tuple[str, str]] | None = None,
    reasons: Sequence[str] = DEFAULT_REASONS,
    reason_rate: float = 0.25,
    session_size: int = 30,
    clip_ms: int = 10_000,
    study: str = "sim",
    seed: int | None = 0,
) -> Simulation:
    """Simulate a side-by-side study with known condition scores.

    Parameters
    ----------
    n_conditions, n_contents, n_votes, n_raters : int
        Study size; ``n_votes`` counts the regular trials (repeats and gold come on top).
        Votes are spread evenly over raters and uniformly over pairs and contents.
    model : {"bt", "thurstone"}
        Latent noise: standard logistic (Bradley–Terry) or standard normal (Thurstone
        case V without rescaling, so BT fits give scores ≈ 1.7 × the truth).
    scale : {"pc5", "2afc", "ccr7"}
        Answer scale; ``2afc`` has no "no preference" and requires ``tie_rate=0``.
    tie_rate : float
        Share of "no preference" answers for two equal conditions.
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
    repeats_per_rater, gold_per_rater : int
        Consistency repeats and gold trials per rater (see the module docstring).
    gold_slip : float
        Probability that an honest rater answers a gold trial one step off.
    true_scores : array-like, optional
        True log-strengths of the conditions (centred here); drawn from
        ``N(0, score_sd²)`` when omitted.
    pairs : sequence of (cond_a, cond_b), optional
        The compared pairs (names from ``C01…``); all pairs when omitted.
    reasons : sequence of str
        Decision factors; each non-tie vote names each factor with probability
        ``reason_rate`` (several joined by ``;``).
    session_size : int
        Regular trials per session.
    clip_ms : int
        Clip duration (both clips play in sync).
    study : str
        Value of the ``study`` column.
    seed : int or None
        Seed of the random generator.

    Returns
    -------
    Simulation
    """
    scale_def = frames.SCALES.get(scale)
    _check(scale_def is not None and scale_def.kind == "pairwise", f"scale must be pairwise, got {scale!r}")
    _check(model in ("bt", "thurstone"), f"model must be 'bt' or 'thurstone', got {model!r}")
    _check(n_conditions >= 2, "need at least 2 conditions")
    _check(min(n_contents, n_votes, n_raters) >= 1, "n_contents, n_votes and n_raters must be positive")
    _check(0 <= tie_rate < 1, "tie_rate must be in [0, 1)")
    _check(scale_def.allows_zero or tie_rate == 0, f"{scale} has no 'no preference': set tie_rate=0")
    _check(0 <= spammer_fraction <= 1, "spammer_fraction must be in [0, 1]")
    _check(min(rater_scale_sd, rater_decisiveness_sd, rater_position_sd) >= 0, "rater sds must be >= 0")
    _check(spammer_style in ("random", "left"), "spammer_style must be 'random' or 'left'")
    rng = np.random.default_rng(seed)
    top = scale_def.high

    cond_names = _names("C", n_conditions, 2)
    if true_scores is None:
        scores = rng.normal(0.0, score_sd, n_conditions)
    else:
        scores = np.asarray(true_scores, dtype=float)
        _check(scores.shape == (n_conditions,), f"true_scores needs {n_conditions} values")
    scores = scores - scores.mean()

    if pairs is None:
        ia, ib = np.triu_indices(n_conditions, k=1)
    else:
        index = {c: i for i, c in enumerate(cond_names)}
        unknown = sorted({c for p in pairs for c in p} - set(index))
        _check(not unknown, f"pairs name unknown conditions {unknown}; names are {cond_names[0]}…")
        ia = np.array([index[a] for a, _ in pairs])
        ib = np.array([index[b] for _, b in pairs])
        _check(bool(np.all(ia != ib)), "a pair compares a condition with itself")

    # Raters: who spams, how each one sees the conditions.
    rater_names = _names("r", n_raters, 3)
    spammer = np.zeros(n_raters, dtype=bool)
    spammer[rng.choice(n_raters, round(spammer_fraction * n_raters), replace=False)] = True
    view = scores[None, :] + rng.normal(0.0, rater_noise, (n_raters, n_conditions)) * (rater_noise > 0)
    scale_r = _lognormal(rng, rater_scale_sd, n_raters)
    decisive_r = _lognormal(rng, rater_decisiveness_sd, n_raters)
    lean_r = rng.normal(0.0, rater_position_sd, n_raters) if rater_position_sd > 0 else np.zeros(n_raters)

    # Regular trials.
    rater_of = rng.permutation(np.arange(n_votes) % n_raters)
    pair_of = rng.integers(0, len(ia), n_votes)
    content_of = rng.integers(0, n_contents, n_votes)
    session_of, pos, _ = _sessions(rng, rater_of, n_raters, session_size)
    a, b = ia[pair_of], ib[pair_of]

    # Repeats: an earlier trial of the same session, at the session's end.
    orig = _pick_per_rater(rng, rater_of, n_raters, repeats_per_rater)
    # Gold: per rater, placed in a random session of that rater at a random position.
    n_sess = np.bincount(rater_of, minlength=n_raters) // session_size + 1
    g_rater = np.repeat(np.arange(n_raters), gold_per_rater)
    g_session = (rng.random(len(g_rater)) * np.maximum(n_sess[g_rater] - 1, 1)).astype(np.int64)

    n_reg, n_rep, n_gold = n_votes, len(orig), len(g_rater)
    all_rater = np.concatenate([rater_of, rater_of[orig], g_rater])
    all_session = np.concatenate([session_of, session_of[orig], g_session])
    order_key = np.concatenate(
        [pos.astype(float), session_size + rng.random(n_rep), rng.random(n_gold) * session_size]
    )
    original = np.concatenate([np.full(n_reg, -1), orig, np.full(n_gold, -1)])
    a_all = np.concatenate([a, a[orig], np.full(n_gold, -1)])
    b_all = np.concatenate([b, b[orig], np.full(n_gold, -1)])
    left_a = rng.random(n_reg) < 0.5
    left_all = np.concatenate([left_a, ~left_a[orig], rng.random(n_gold) < 0.5])

    # Answers of regular trials and repeats: latent difference → category.
    n_main = n_reg + n_rep
    r_main, a_m, b_m = all_rater[:n_main], a_all[:n_main], b_all[:n_main]
    side = np.where(left_all[:n_main], 1.0, -1.0)
    noise = rng.logistic(size=n_main) if model == "bt" else rng.standard_normal(n_main)
    z = scale_r[r_main] * (view[r_main, a_m] - view[r_main, b_m]) + (position_bias + lean_r[r_main]) * side + noise
    thresholds = pairwise_thresholds(model, scale, tie_rate)
    strength = np.searchsorted(thresholds, decisive_r[r_main] * np.abs(z), side="right")
    pref = (np.sign(z) * np.minimum(strength, top)).astype(np.int64)
    if not scale_def.allows_zero:
        pref = np.where(pref == 0, np.where(z >= 0, 1, -1), pref)

    # Gold answers: correct is the strongest preference for A (the reference).
    g_pref = np.full(n_gold, top, dtype=np.int64)
    slip = rng.random(n_gold) < gold_slip
    g_pref[slip] = top - 1 if scale_def.allows_zero or top > 1 else top
    pref_all = np.concatenate([pref, g_pref])

    # Spammers overwrite every answer they give.
    spam_rows = spammer[all_rater]
    if spammer_style == "random":
        values = np.arange(-top, top + 1)
        values = values[values != 0] if not scale_def.allows_zero else values
        pref_all[spam_rows] = rng.choice(values, int(spam_rows.sum()))
    else:
        left_sign = np.where(left_all[spam_rows], 1, -1)
        pref_all[spam_rows] = top * left_sign

    # Reasons: each factor independently, only when a preference was expressed.
    # Reason code = bit mask of the factors named; 0 (none named, or a tie) is null.
    picks = rng.random((len(pref_all), len(reasons))) < reason_rate
    code = np.where(pref_all != 0, picks @ (1 << np.arange(len(reasons))), 0)
    combos = np.array(
        [";".join(r for k, r in enumerate(reasons) if c >> k & 1) or None for c in range(1 << len(reasons))],
        dtype=object,
    )

    # Gold rows index past the real conditions / contents.
    cond_ext = np.array([*cond_names, GOLD_REFERENCE, GOLD_DEGRADED], dtype=object)
    code_a = np.concatenate([a_all[:n_main], np.full(n_gold, n_conditions)])
    code_b = np.concatenate([b_all[:n_main], np.full(n_gold, n_conditions + 1)])
    contents = np.concatenate([_names("v", n_contents, 4), _names("gold", max(gold_per_rater, 1), 2)])
    code_content = np.concatenate(
        [content_of, content_of[orig], n_contents + rng.integers(0, max(gold_per_rater, 1), n_gold)]
    )
    n_all = len(pref_all)
    gold_expected = _nullable(np.full(n_all, top), np.arange(n_all) < n_main)

    meta = _assemble(rng, n_raters, rater_names, spammer, all_rater, all_session, order_key, original, clip_ms)
    cols = {
        "content": _strings(contents, code_content),
        "cond_a": _strings(cond_ext, code_a),
        "cond_b": _strings(cond_ext, code_b),
        "pref": pref_all,
        "reason": _strings(combos, code),
        "shown_left": _strings(["b", "a"], left_all.astype(np.int64)),
        "gold_expected": gold_expected,
    }
    votes = _frame(cols, "pairwise", meta, study, scale)
    truth = pd.DataFrame({"condition": list(cond_names), "score": scores})
    raters = pd.DataFrame(
        {"rater": pd.array(rater_names, dtype="string"), "spammer": spammer,
         "noise": np.full(n_raters, float(rater_noise)), "scale": scale_r, "decisiveness": decisive_r,
         "lean": lean_r}
    )
    params = {
        "kind": "pairwise", "n_conditions": n_conditions, "n_contents": n_contents, "n_votes": n_votes,
        "n_raters": n_raters, "model": model, "scale": scale, "tie_rate": tie_rate,
        "rater_noise": rater_noise, "rater_scale_sd": rater_scale_sd,
        "rater_decisiveness_sd": rater_decisiveness_sd, "rater_position_sd": rater_position_sd,
        "position_bias": position_bias, "spammer_fraction": spammer_fraction,
        "spammer_style": spammer_style, "repeats_per_rater": repeats_per_rater,
        "gold_per_rater": gold_per_rater, "gold_slip": gold_slip, "score_sd": score_sd,
        "true_scores": None if true_scores is None else list(map(float, true_scores)),
        "pairs": None if pairs is None else [tuple(p) for p in pairs], "reasons": tuple(reasons),
        "reason_rate": reason_rate, "session_size": session_size, "clip_ms": clip_ms, "study": study,
        "seed": seed, "thresholds": thresholds.tolist(),
    }
    return Simulation(votes=votes, truth=truth, raters=raters, stimuli=None, params=params)


def _rating_defaults(scale: str) -> tuple[float, float, float]:
    """(low, high, unit) of a ratings scale; ``unit`` is a quarter of the range."""
    s = frames.SCALES[scale]
    return float(s.low), float(s.high), (s.high - s.low) / 4.0


def simulate_ratings(
    n_conditions: int = 12,
    n_contents: int = 20,
    n_raters: int = 30,
    *,
    scale: Literal["acr5", "acr-hr", "dcr5", "slider100"] = "acr5",
    n_votes: int | None = None,
    rater_bias_sd: float | None = None,
    rater_inconsistency: float | None = None,
    rater_inconsistency_cv: float = 0.5,
    rater_scale_sd: float = 0.0,
    condition_sd: float | None = None,
    content_sd: float | None = None,
    stimulus_sd: float | None = None,
    spammer_fraction: float = 0.0,
    repeats_per_rater: int = 0,
    gold_per_rater: int = 0,
    gold_slip: float = 0.05,
    true_scores: Sequence[float] | np.ndarray | None = None,
    session_size: int = 30,
    clip_ms: int = 10_000,
    study: str = "sim",
    seed: int | None = 0,
) -> Simulation:
    """Simulate a single-stimulus study from the subject model.

    ``score = round(clip(q_{content,cond} + b_r + v_r · ε))`` with stimulus quality
    ``q = mid + condition offset + content effect + interaction``, rater bias
    ``b_r ~ N(0, rater_bias_sd²)`` and per-rater inconsistency
    ``v_r = rater_inconsistency · Gamma(1/cv², cv²)`` (mean ``rater_inconsistency``,
    coefficient of variation ``cv = rater_inconsistency_cv``, 0.5 by default). With ``rater_scale_sd > 0`` rater r sees
    ``mid + c_r·(q − mid)`` instead of ``q``, ``c_r = exp(N(0, rater_scale_sd²))``: some
    raters use the whole scale, others stay near its middle. All sds are in scale points; ``None`` means a
    default relative to the scale's quarter-range ``u`` (1 point on 5-point scales, 25
    on ``slider100``): bias 0.3u, inconsistency 0.5u, conditions 0.6u, contents 0.3u,
    interaction 0.1u.

    Parameters
    ----------
    n_conditions, n_contents, n_raters : int
        Study size; the stimuli are every (content, condition).
    scale : {"acr5", "acr-hr", "dcr5", "slider100"}
        ``acr-hr`` adds a hidden reference condition ``REF`` (the source, rated like any
        clip, 0.5u above the best condition).
    n_votes : int, optional
        Number of regular ratings, spread evenly over raters and uniformly over
        stimuli; ``None`` means every rater rates every stimulus once.
    rater_bias_sd, rater_inconsistency, condition_sd, content_sd, stimulus_sd : float, optional
        See above.
    rater_inconsistency_cv : float
        Coefficient of variation of the raters' inconsistencies (0: all equal).
    rater_scale_sd : float
        Sd of the log of each rater's stretch ``c_r`` of the quality range (0: none).
    spammer_fraction : float
        Share of raters that answer uniformly at random (and fast).
    repeats_per_rater, gold_per_rater : int
        Consistency repeats (same stimulus later in the same session) and gold clips
        (condition ``GOLD``, ``gold_expected`` = the requested answer).
    gold_slip : float
        Probability that an honest rater answers a gold clip one step off.
    true_scores : array-like, optional
        Condition offsets in scale points (centred here); drawn when omitted.
    session_size, clip_ms, study, seed
        As in :func:`simulate_pairwise`.

    Returns
    -------
    Simulation
    """
    scale_def = frames.SCALES.get(scale)
    _check(scale_def is not None and scale_def.kind == "ratings", f"scale must be a ratings scale, got {scale!r}")
    _check(n_conditions >= 1 and n_contents >= 1 and n_raters >= 1, "sizes must be positive")
    _check(0 <= spammer_fraction <= 1, "spammer_fraction must be in [0, 1]")
    _check(min(rater_scale_sd, rater_inconsistency_cv) >= 0, "rater_scale_sd and rater_inconsistency_cv must be >= 0")
    rng = np.random.default_rng(seed)
    low, high, unit = _rating_defaults(scale)
    bias_sd = 0.3 * unit if rater_bias_sd is None else float(rater_bias_sd)
    inconsistency = 0.5 * unit if rater_inconsistency is None else float(rater_inconsistency)
    cond_sd = 0.6 * unit if condition_sd is None else float(condition_sd)
    cont_sd = 0.3 * unit if content_sd is None else float(content_sd)
    stim_sd = 0.1 * unit if stimulus_sd is None else float(stimulus_sd)
    step = 1.0  # every ratings scale here is an integer scale

    cond_names = list(_names("C", n_conditions, 2))
    if true_scores is None:
        offsets = rng.normal(0.0, cond_sd, n_conditions)
    else:
        offsets = np.asarray(true_scores, dtype=float)
        _check(offsets.shape == (n_conditions,), f"true_scores needs {n_conditions} values")
    offsets = offsets - offsets.mean()
    if scale == "acr-hr":
        cond_names.append(REFERENCE_CONDITION)
        offsets = np.append(offsets, offsets.max() + 0.5 * unit)
    n_cond = len(cond_names)
    mid = (low + high) / 2
    content_eff = rng.normal(0.0, cont_sd, n_contents)
    quality = mid + offsets[None, :] + content_eff[:, None] + rng.normal(0.0, stim_sd, (n_contents, n_cond))
    n_stim = n_contents * n_cond

    rater_names = _names("r", n_raters, 3)
    spammer = np.zeros(n_raters, dtype=bool)
    spammer[rng.choice(n_raters, round(spammer_fraction * n_raters), replace=False)] = True
    bias = rng.normal(0.0, bias_sd, n_raters)
    cv = float(rater_inconsistency_cv)
    incons = inconsistency * (rng.gamma(1.0 / cv**2, cv**2, n_raters) if cv > 0 else np.ones(n_raters))
    stretch = _lognormal(rng, rater_scale_sd, n_raters)

    if n_votes is None:
        rater_of = np.repeat(np.arange(n_raters), n_stim)
        # Each rater sees every stimulus once, in a random order.
        stim_of = rng.random((n_raters, n_stim)).argsort(axis=1).ravel()
    else:
        _check(n_votes >= 1, "n_votes must be positive")
        rater_of = rng.permutation(np.arange(n_votes) % n_raters)
        stim_of = rng.integers(0, n_stim, n_votes)
    n_reg = len(rater_of)
    session_of, pos, _ = _sessions(rng, rater_of, n_raters, session_size)
    orig = _pick_per_rater(rng, rater_of, n_raters, repeats_per_rater)
    n_sess = np.bincount(rater_of, minlength=n_raters) // session_size + 1
    g_rater = np.repeat(np.arange(n_raters), gold_per_rater)
    g_session = (rng.random(len(g_rater)) * np.maximum(n_sess[g_rater] - 1, 1)).astype(np.int64)
    n_rep, n_gold = len(orig), len(g_rater)

    all_rater = np.concatenate([rater_of, rater_of[orig], g_rater])
    all_session = np.concatenate([session_of, session_of[orig], g_session])
    order_key = np.concatenate(
        [pos.astype(float), session_size + rng.random(n_rep), rng.random(n_gold) * session_size]
    )
    original = np.concatenate([np.full(n_reg, -1), orig, np.full(n_gold, -1)])
    stim_main = np.concatenate([stim_of, stim_of[orig]])
    content_idx, cond_idx = stim_main // n_cond, stim_main % n_cond
    r_main = all_rater[: n_reg + n_rep]
    seen = mid + stretch[r_main] * (quality[content_idx, cond_idx] - mid)
    latent = seen + bias[r_main] + incons[r_main] * rng.standard_normal(len(r_main))
    score = np.clip(np.round(latent / step) * step, low, high)

    # Gold: "select N" cards, N inside the scale and away from its ends.
    g_levels = np.arange(10.0, 91.0, 10.0) if scale == "slider100" else np.arange(low + step, high, step)
    g_expected = rng.choice(g_levels, n_gold) if n_gold else np.empty(0)
    g_score = g_expected + np.where(rng.random(n_gold) < gold_slip, rng.choice([-step, step], n_gold), 0.0)
    score_all = np.concatenate([score, np.clip(g_score, low, high)])
    spam_rows = spammer[all_rater]
    score_all[spam_rows] = rng.integers(int(low), int(high) + 1, int(spam_rows.sum()))

    cond_arr = np.array(cond_names, dtype=object)
    contents = _names("v", n_contents, 4)
    content_ext = np.concatenate([contents, _names("gold", max(gold_per_rater, 1), 2)])
    code_content = np.concatenate([content_idx, n_contents + rng.integers(0, max(gold_per_rater, 1), n_gold)])
    cond_ext = np.array([*cond_names, GOLD_CONDITION], dtype=object)
    code_cond = np.concatenate([cond_idx, np.full(n_gold, n_cond)])
    n_all = len(score_all)
    gold_expected = _nullable(
        np.concatenate([np.zeros(n_reg + n_rep), g_expected]).astype(np.int64), np.arange(n_all) < n_reg + n_rep
    )

    meta = _assemble(rng, n_raters, rater_names, spammer, all_rater, all_session, order_key, original, clip_ms)
    cols = {
        "content": _strings(content_ext, code_content),
        "cond": _strings(cond_ext, code_cond),
        "score": score_all,
        "gold_expected": gold_expected,
    }
    votes = _frame(cols, "ratings", meta, study, scale)
    cond_quality = quality.mean(axis=0)
    truth = pd.DataFrame(
        {"condition": cond_names, "score": cond_quality - cond_quality.mean(), "quality": cond_quality}
    )
    stimuli = pd.DataFrame(
        {
            "content": np.repeat(contents, n_cond),
            "cond": np.tile(cond_arr, n_contents),
            "quality": quality.ravel(),
        }
    )
    raters = pd.DataFrame(
        {"rater": pd.array(rater_names, dtype="string"), "spammer": spammer, "bias": bias, "inconsistency": incons,
         "scale": stretch}
    )
    params = {
        "kind": "ratings", "n_conditions": n_conditions, "n_contents": n_contents, "n_raters": n_raters,
        "scale": scale, "n_votes": n_votes, "rater_bias_sd": bias_sd, "rater_inconsistency": inconsistency,
        "rater_inconsistency_cv": rater_inconsistency_cv, "rater_scale_sd": rater_scale_sd,
        "condition_sd": cond_sd, "content_sd": cont_sd, "stimulus_sd": stim_sd,
        "spammer_fraction": spammer_fraction, "repeats_per_rater": repeats_per_rater,
        "gold_per_rater": gold_per_rater, "gold_slip": gold_slip,
        "true_scores": None if true_scores is None else list(map(float, true_scores)),
        "reference": REFERENCE_CONDITION if scale == "acr-hr" else None,
        "session_size": session_size, "clip_ms": clip_ms, "study": study, "seed": seed,
    }
    return Simulation(votes=votes, truth=truth, raters=raters, stimuli=stimuli, params=params)
