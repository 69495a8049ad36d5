"""Bradley–Terry scores with ties, honest intervals and a rater-cluster bootstrap.

Model
-----
Condition ``i`` has log-strength ``s_i``; for a pair with ``d = s_i − s_j``:

* ``"davidson"`` (default): ``P(i ≻ j) = e^{d/2} / D``, ``P(tie) = ν / D`` with
  ``D = e^{d/2} + e^{−d/2} + ν`` (Davidson 1970; ``ν`` fitted as ``κ = log ν``).
* ``"rao-kupper"``: ``P(i ≻ j) = σ(d − η)``, ``P(tie) = σ(d + η) − σ(d − η)``, ``η > 0``
  (Rao & Kupper 1967, ``θ = e^η``). This is the ordinal logistic model the simulator
  draws from, so it is unbiased on simulated ties.
* ``"split"``: a tie counts as half a win for each side, then plain BT.

With ``graded=True`` a vote of strength ``k`` (``|pref| = k``, e.g. "strong" = 2 on
``pc5``) counts as ``k`` wins. Without ties in the data every model is plain BT.

Fitting works on sufficient statistics only: per compared pair, the (weighted) wins of
each side and the ties. Newton's method on the concave log-likelihood (in ``(s, κ)``
for Davidson, ``(s, η)`` for Rao–Kupper) with a line search; the sum-to-zero
constraint is handled by solving ``(J + u uᵀ) δ = g`` with ``u = 1/√n`` on the scores
— ``J`` (the observed information) has exactly ``u`` as null vector when the
comparison graph is connected, and ``g ⟂ u``, so ``δ`` is the constrained Newton step.
Up to ``SPARSE_ABOVE`` conditions the system is solved densely; beyond, ``J`` is a
``scipy.sparse`` matrix and the step comes from preconditioned conjugate gradients.

Intervals
---------
One vote's outcome is not independent of the same rater's other votes: raters differ in
how they read the scale, how decisive they are and what they look at. Every interval is
therefore, by default, clustered by rater.

* **Cluster-robust (sandwich), clustered by rater** — ``ci="cluster"``, the default:
  ``V = c · J⁺ (Σ_r g_r g_rᵀ) J⁺`` with ``g_r`` rater r's contribution to the score
  vector at the estimate and ``c = G/(G−1)`` for ``G`` raters (the CR1 small-sample
  factor); intervals ``± t_{G−1, 1−α/2}·se`` (Liang & Zeger 1986, *Biometrika* 73:13;
  Cameron & Miller 2015, *J. Human Resources* 50:317, §II.B and §VI). ``g_r`` is linear in
  the rater's pair counts, so all of it is one sparse product. Up to ``SPARSE_ABOVE``
  conditions ``V`` is floored at the model-based covariance, ``V + (V_H − V)_+`` (the
  positive part of the difference): a panel that looks *less* variable than the model
  allows — one rater, or every vote a tie under ``ties="split"`` — is not credited with
  more precision than the votes' number gives. Fewer than 2 raters: NaN, with a note.
* **Bootstrap over raters** — ``ci="bootstrap"``: per-rater pair counts are precomputed
  once; each round draws ``G − 1`` raters with replacement (:mod:`analysis.resample`;
  all rounds at once, as multinomial weights), forms the
  round's counts by one matrix product and refits by a few batched Newton steps
  warm-started at the full-data estimate. Expanded percentile intervals (percentiles at
  ``Φ(±t_{G−1, 1−α/2})``, Hesterberg 2015, so a panel of ``G`` raters gets its t
  quantile as the clustered interval does). A round whose counts have
  no finite MLE (its win graph is not strongly connected: some group never wins or never
  loses; or, with a tie model, no tie or no decided vote) is detected exactly, left out
  and counted in ``params["boot_failed"]`` with non-converged rounds. When more than
  ``MAX_BOOT_FAILED`` of the rounds fail, or some score does not vary over the kept
  rounds (a zero-width interval), or there are
  fewer than 2 raters, the bootstrap interval is refused: the fit falls back to the
  clustered interval and says why in ``params["boot_refused"]`` and a warning.
* **Hessian (model-based)** — ``ci="hessian"``: ``J⁺`` (Moore–Penrose inverse of the
  observed information, ``(J + u uᵀ)⁻¹ − u uᵀ``), Wald intervals ``± z_{1−α/2}·se``.
  Treats votes as independent: narrower than the truth whenever raters differ. The only
  choice without rater ids (:func:`fit_counts`).

Scores are centred to mean 0, or anchored (``score(anchor) = 0``), optionally on an
Elo-like scale ``1500 + 400/ln 10 · s``.
"""

from analysis.bradley_terry.counts import PairCounts, VoteCounts, count_votes
from analysis.bradley_terry.fitting import (
    CI_METHODS,
    ELO_OFFSET,
    ELO_SCALE,
    SPARSE_ABOVE,
    TIE_MODELS,
    CiMethod,
    TieModel,
    fit,
    fit_counts,
)
from analysis.bradley_terry.graph import ComparisonGraphError, DisconnectedError, SeparationError, check_graph
from analysis.bradley_terry.intervals import MAX_BOOT_FAILED
from analysis.bradley_terry.reasons import ON_ERROR, fit_by_reason, present_reasons
from analysis.bradley_terry.result import INTERVAL_METHODS, BTResult

__all__ = [
    "CI_METHODS",
    "ELO_OFFSET",
    "ELO_SCALE",
    "INTERVAL_METHODS",
    "MAX_BOOT_FAILED",
    "ON_ERROR",
    "SPARSE_ABOVE",
    "TIE_MODELS",
    "BTResult",
    "CiMethod",
    "ComparisonGraphError",
    "DisconnectedError",
    "PairCounts",
    "SeparationError",
    "TieModel",
    "VoteCounts",
    "check_graph",
    "count_votes",
    "fit",
    "fit_by_reason",
    "fit_counts",
    "present_reasons",
]
