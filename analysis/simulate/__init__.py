"""Synthetic studies with a known truth, emitted as valid tidy frames.

Two generators, both fully vectorised (350,000 votes in a fraction of a second):

* :func:`simulate_pairwise` — side-by-side votes (``pc5``, ``2afc``, ``ccr7``) from a
  Bradley–Terry or Thurstone rater;
* :func:`simulate_ratings` — single-stimulus scores (``acr5``, ``acr-hr``, ``dcr5``,
  ``slider100``) from the subject model ``score = quality + bias_r + inconsistency_r · ε``
  (the model of SUREAL / ITU-T P.913 §12), rounded and clipped to the scale; optionally
  each rater stretches or compresses the quality range (``rater_scale_sd``).

Both return a :class:`Simulation`: the votes, the truth and the parameters. Each takes three
option objects, grouped by meaning, every field with its default:

* the **truth** (:class:`PairwiseTruth`, :class:`RatingsTruth`): the conditions, their true
  scores or quality, and (pairwise) how a latent difference becomes an answer;
* the **panel** (:class:`PairwisePanel`, :class:`RatingsPanel`): the raters, their effects
  (noise, bias, scale use, position lean, gold slips) and the spammers;
* the **design** (:class:`PairwiseDesign`, :class:`RatingsDesign`, both a :class:`Schedule`):
  the test method, contents, votes, pairs, decision factors, sessions, repeats and gold.

For example ``simulate_pairwise(PairwiseTruth(n_conditions=5), PairwisePanel(n_raters=8),
PairwiseDesign(n_contents=4, n_votes=400, repeats_per_rater=2), seed=1)``.

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

from analysis.simulate.common import (
    GOLD_CONDITION,
    GOLD_DEGRADED,
    GOLD_REFERENCE,
    REFERENCE_CONDITION,
    Schedule,
    Simulation,
    condition_names,
)
from analysis.simulate.pairwise import (
    DEFAULT_REASONS,
    PairwiseDesign,
    PairwisePanel,
    PairwiseTruth,
    pairwise_thresholds,
    simulate_pairwise,
)
from analysis.simulate.ratings import RatingsDesign, RatingsPanel, RatingsTruth, simulate_ratings

__all__ = [
    "DEFAULT_REASONS", "GOLD_CONDITION", "GOLD_DEGRADED", "GOLD_REFERENCE", "REFERENCE_CONDITION",
    "PairwiseDesign", "PairwisePanel", "PairwiseTruth", "RatingsDesign", "RatingsPanel", "RatingsTruth",
    "Schedule", "Simulation", "condition_names", "pairwise_thresholds", "simulate_pairwise", "simulate_ratings",
]
