"""Rater screening: who stays in the panel, and which rule dropped the others.

Every rule of PROTOCOL.md §3 is a field of :class:`ScreeningRules`; setting a
field to ``None`` disables that rule. :func:`screen` computes every statistic
for every rater (whether or not its rule is enabled, so a report can show them)
and marks a rater dropped when at least one enabled rule fires.

The two rules that judge a rater's answers against the rest of the panel
(``loo_corr`` for ratings, ``bt_agreement`` for pairwise votes) are tests, not
cut-offs on a statistic: a rater is dropped only when their answers are *not
significantly better than chance*, and only when they gave enough answers for an
attentive rater to have shown it. An attentive rater who sees things a little
differently from the others (bias, decisiveness, a compressed or stretched use of
the scale) still agrees with them better than a coin and is kept; a random
clicker with enough answers is dropped with probability ``1 − alpha``.

"Enough" is measured on the panel itself. A typical rater's test statistic grows
like ``effect·√n``; the effect is the panel median (of the leave-one-out
correlation, or of ``z/√n`` for pairwise votes), so a minority of clickers does not
move it. A rater is tested only from the ``n`` at which a typical rater passes the
test with probability ``*_power`` (0.999 by default: an attentive rater half as
discriminating as the typical one at that ``n`` still passes most of the time), and
never below ``loo_min_items`` / ``bt_min_votes``. With close conditions or short
sessions that ``n`` is large and few raters are tested: agreement cannot tell a
clicker from an honest rater there, and the notes say so — gold trials, repeats and
timing are the rules for such designs. :attr:`ScreeningResult.agreement_min_n`
holds the ``n`` of each test.

Rule names, as they appear in ``dropped_by``:

``consistency_rank``
    one of the ``drop_least_consistent`` raters with the lowest agreement on
    consistency repeats (the 2021 challenge dropped 3 of 15).
``consistency``
    agreement on repeats below ``min_consistency``.
``gold``
    accuracy on gold trials below ``min_gold_accuracy``; a gold answer is correct
    when ``|answer − expected|`` is within that item's own ``gold_tolerance``
    (the column the web export writes; P.910 toolkit default ±1).
``bt500``
    ITU-R BT.500-14 Annex 1 §2.3.1 kurtosis-based rejection (ratings only).
``loo_corr``
    ratings: Pearson correlation of the rater's scores with the mean of the
    *other* raters on the same items is not significantly positive (one-sided
    t-test of ρ = 0, ``t = r·√((n−2)/(1−r²))`` on ``n − 2`` degrees of freedom,
    Fisher 1915) at level ``loo_alpha``.
``bt_agreement``
    pairwise: the rater's answers do not agree with the Bradley–Terry fit of the
    *other* raters (Bradley & Terry 1952; ties as half wins) significantly better
    than chance at level ``bt_alpha``. The test is a sign-flip (randomisation) test in the sense of Fisher
    (1935): under "the rater's answer does not depend on which clip is better"
    the sign of each answer is a fair coin whatever its strength, so
    ``U = Σ pref_i · d_i`` (``d_i`` the others' fitted difference of the pair)
    has mean 0 and variance ``Σ pref_i² d_i²``; ``U`` is the score statistic of
    a per-rater discrimination factor at 0 (Rao 1948), and the p-value is
    ``1 − Φ(U / √Σ pref_i² d_i²)``.
``position_bias``
    chose the left clip significantly and substantially more (or less) often
    than half the time (pairwise only).
``too_fast``
    median time per trial below ``min_median_watch_ms`` (or below
    ``min_median_answer_ms`` when the frame has an ``answer_ms`` column).

Leave-one-rater-out fit (``bt_agreement``): with at most
:data:`EXACT_LOO_MAX_RATERS` raters (and :data:`EXACT_LOO_MAX_CONDITIONS`
conditions) the fit without each rater is computed exactly, by Newton's method
started at the pooled fit. Above, one rater's influence on the pooled fit is
small and the fit without them is its one-step Newton approximation
``ŝ − H⁻¹ g_r`` (``g_r`` the rater's score vector at the pooled fit, ``H`` the
pooled information; Pregibon 1981's one-step case-deletion estimate), all raters
in one solve. The fit carries a weak ridge (:data:`BT_RIDGE`, a N(0, 10) prior on
log-strengths) so that a condition that never loses still has a finite score.

No rule silently removes most of a panel: a rule that would drop more than
``max_drop_share`` of the raters is not applied and says so in
:attr:`ScreeningResult.notes` (the threshold or the study design is then in
doubt, not the raters). Raters an agreement test cannot judge (too few items or
votes) get NaN for its p-value, are never dropped by it, and are listed in the notes.

Statistics use the rows they are defined on: consistency uses repeat rows and
the first showings they point at, gold accuracy uses gold rows, BT.500, the
leave-one-out correlation and the agreement with the Bradley–Terry fit use
:func:`main_votes` (gold clips would distort the panel's distribution), position
bias and timing use every row.

References: R. A. Bradley, M. E. Terry, Biometrika 39 (1952) 324–345;
R. A. Fisher, Biometrika 10 (1915) 507–521 and *The Design of Experiments* (1935);
C. R. Rao, Proc. Camb. Phil. Soc. 44 (1948) 50–57; D. Pregibon, Ann. Statist. 9
(1981) 705–724; ITU-R BT.500-14 (2019) Annex 1 §2.3.1.
"""

from analysis.screening.agreement import BT_RIDGE, EXACT_LOO_MAX_CONDITIONS, EXACT_LOO_MAX_RATERS
from analysis.screening.checks import bt500_counts, bt500_rejected
from analysis.screening.decide import main_votes, screen
from analysis.screening.rules import RATER_COLUMNS, RULE_NAMES, ScreeningResult, ScreeningRules

__all__ = [
    "BT_RIDGE",
    "EXACT_LOO_MAX_CONDITIONS",
    "EXACT_LOO_MAX_RATERS",
    "RATER_COLUMNS",
    "RULE_NAMES",
    "ScreeningResult",
    "ScreeningRules",
    "bt500_counts",
    "bt500_rejected",
    "main_votes",
    "screen",
]
