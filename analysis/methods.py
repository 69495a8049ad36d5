"""The test methods: one registry entry each, read everywhere a method matters.

A *test method* (pc5, 2afc, ccr7, acr5, acr-hr, dcr5, slider100) is named once, here,
and that name is what the manifest's ``method``, the ``studies.method`` column, the vote
frames' ``method`` column, the export and the rater's page all say. Each
:class:`TestMethod` holds everything the project knows about a method:

* the **stored** range of a vote (``pref`` relative to (A, B) for pairwise methods,
  the ``score`` for ratings) and whether 0 ("no preference") exists;
* the **screen** range the rater answers in, and the mapping between the two: the rater
  answers about *left* and *right*, the stored value is about A and B (PROTOCOL.md §1);
* the rater's words as **catalog keys** (question, answer labels, the A/B wording of the
  toggle view, slider texts, the welcome hint) — the web app translates them;
* how the answer controls look (buttons or a slider, best answer first) and which screen
  answer is neutral (it needs no reasons);
* the role of the reference condition (a hidden reference rated like any condition, or a
  reference shown before each processed clip).

The registry is plain data: the analysis validates frames with it, the web app builds its
manifest check, database constraint, API and page configuration from it, and
``static/js/vote.js`` draws the controls from the entry the server puts in the page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["pairwise", "ratings"]
Control = Literal["buttons", "slider"]
#: ``hidden``: the reference is one more condition, rated blind (ACR-HR, DMOS);
#: ``shown``: each trial shows the reference before the processed clip (DCR), never as an item.
ReferenceRole = Literal["hidden", "shown"]


@dataclass(frozen=True)
class TestMethod:
    """One test method: its values, its words and its controls.

    Attributes
    ----------
    name : str
        The one name of the method (manifest, database, frames, export, page).
    kind : {"pairwise", "ratings"}
        Pairwise methods compare two conditions of a content; ratings score one stimulus.
    low, high : int
        The stored range: ``pref`` (pairwise, positive = A preferred) or ``score`` (ratings).
    allows_zero : bool
        Whether the stored value 0 ("no preference") exists.
    screen_low, screen_high : int
        The range of the answers the rater's page sends.
    toward_right : tuple of int
        Pairwise only: the stored value of each screen answer ``screen_low..screen_high``
        when B is on the left (so positive = the right clip preferred). With A on the left
        the sign flips. Empty for ratings, which are stored as answered.
    labels : tuple of (int, str)
        ``(screen answer, catalog key)`` in screen order; empty for a slider.
    labels_ab : tuple of str
        Catalog keys of the same answers in the toggle view's words (A/B instead of
        left/right); empty when the labels name no side.
    question, question_ab : str
        Catalog keys of the question, side by side and in the toggle view.
    hint : str
        Catalog key of the welcome page's description of a trial.
    control : {"buttons", "slider"}
        How the page draws the answers.
    best_first : bool
        Draw the best answer first (as P.910 prints category scales); the shortcut key of an
        answer is then its value, else its position.
    slider_keys : tuple of str
        Catalog keys of a slider's texts: low end, high end, accessible label, value read-out.
    slider_start : int or None
        Where a slider starts (not an answer until the rater moves it).
    reference : {"hidden", "shown"} or None
        The role of the reference condition, when the method needs one.
    dmos : bool
        Whether DMOS (score differences to the hidden reference) is defined on its scores.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    kind: Kind
    low: int
    high: int
    allows_zero: bool
    screen_low: int
    screen_high: int
    question: str
    hint: str
    toward_right: tuple[int, ...] = ()
    labels: tuple[tuple[int, str], ...] = ()
    labels_ab: tuple[str, ...] = ()
    question_ab: str | None = None
    control: Control = "buttons"
    best_first: bool = False
    slider_keys: tuple[str, ...] = ()
    slider_start: int | None = None
    reference: ReferenceRole | None = None
    dmos: bool = False

    @property
    def pairwise(self) -> bool:
        """Whether a trial compares two conditions."""
        return self.kind == "pairwise"

    @property
    def value_column(self) -> str:
        """The frame column that holds a vote's value: ``pref`` or ``score``."""
        return "pref" if self.pairwise else "score"

    @property
    def slider(self) -> bool:
        """Whether answers come from a slider (its steps are small: analysis says what one step is)."""
        return self.control == "slider"

    @property
    def neutral(self) -> int | None:
        """The screen answer that prefers neither clip (it needs no reasons), if there is one."""
        if not self.pairwise or 0 not in self.toward_right:
            return None
        return self.screen_low + self.toward_right.index(0)

    @property
    def catalog_keys(self) -> tuple[str, ...]:
        """Every catalog key this method names (a catalog must hold them all)."""
        keys = [self.question, self.hint, *(k for _, k in self.labels), *self.labels_ab, *self.slider_keys]
        if self.question_ab:
            keys.append(self.question_ab)
        return tuple(dict.fromkeys(keys))

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of the stored values that lie on this method's scale.

        Parameters
        ----------
        values : ndarray
            Numeric stored values.

        Returns
        -------
        ndarray of bool
            Same shape: whole numbers in ``[low, high]`` (and non-zero when ``allows_zero``
            is false).
        """
        ok = (values >= self.low) & (values <= self.high) & (np.floor(values) == values)
        if not self.allows_zero:
            ok &= values != 0
        return ok

    def stored_ok(self, value: int) -> bool:
        """Whether one stored value lies on the scale (see :meth:`contains`)."""
        return self.low <= value <= self.high and (self.allows_zero or value != 0)

    def on_screen(self, answer: int) -> bool:
        """Whether a screen answer is one the page can send."""
        return self.screen_low <= answer <= self.screen_high

    def to_stored(self, answer: int, a_left: bool) -> int:
        """Screen answer → stored value.

        Parameters
        ----------
        answer : int
            The answer on screen (see :meth:`on_screen`).
        a_left : bool
            Whether condition A was shown on the left (ignored for ratings).

        Returns
        -------
        int
            ``pref`` relative to (A, B) for pairwise methods, the score for ratings.
        """
        if not self.pairwise:
            return answer
        right = self.toward_right[answer - self.screen_low]
        return -right if a_left else right

    def to_screen(self, value: int, a_left: bool) -> int:
        """Stored value → the screen answer that produces it (the inverse of :meth:`to_stored`).

        Parameters
        ----------
        value : int
            A stored value on the scale.
        a_left : bool
            Whether condition A is shown on the left.

        Returns
        -------
        int
            The screen answer.
        """
        if not self.pairwise:
            return value
        return self.screen_low + self.toward_right.index(-value if a_left else value)

    def label_key(self, answer: int) -> str | None:
        """The catalog key of a screen answer's label, or None (a slider's answers have none)."""
        return next((key for value, key in self.labels if value == answer), None)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data (what the rater's page is given), derived fields included."""
        return {**asdict(self), "pairwise": self.pairwise, "neutral": self.neutral}


def _labels(prefix: str, values: range) -> tuple[tuple[int, str], ...]:
    return tuple((v, f"{prefix}.{v}") for v in values)


_ACR = _labels("scale.acr", range(1, 6))

#: Every test method a study can use, keyed by its name (PROTOCOL.md §1).
METHODS: dict[str, TestMethod] = {m.name: m for m in (
    TestMethod("pc5", "pairwise", -2, 2, True, 1, 5, "question.pc5", "welcome.pairwise_hint",
               toward_right=(-2, -1, 0, 1, 2), labels=_labels("scale.pc5", range(1, 6)),
               labels_ab=tuple(f"scale.pc5.ab.{v}" for v in range(1, 6)), question_ab="question.pc5"),
    TestMethod("2afc", "pairwise", -1, 1, False, 1, 2, "question.2afc", "welcome.pairwise_hint",
               toward_right=(-1, 1), labels=_labels("scale.2afc", range(1, 3)),
               labels_ab=("scale.2afc.ab.1", "scale.2afc.ab.2"), question_ab="question.2afc"),
    # The question rates the right clip against the left: "better" favours whichever is on the right.
    # Its labels compare, so only the question names a side.
    TestMethod("ccr7", "pairwise", -3, 3, True, -3, 3, "question.ccr7", "welcome.pairwise_hint",
               toward_right=tuple(range(-3, 4)), labels=_labels("scale.ccr7", range(-3, 4)),
               question_ab="question.ccr7.ab"),
    TestMethod("acr5", "ratings", 1, 5, True, 1, 5, "question.acr5", "welcome.single_hint",
               labels=_ACR, best_first=True, dmos=True),
    TestMethod("acr-hr", "ratings", 1, 5, True, 1, 5, "question.acr-hr", "welcome.single_hint",
               labels=_ACR, best_first=True, reference="hidden", dmos=True),
    TestMethod("dcr5", "ratings", 1, 5, True, 1, 5, "question.dcr5", "welcome.dcr_hint",
               labels=_labels("scale.dcr5", range(1, 6)), best_first=True, reference="shown"),
    TestMethod("slider100", "ratings", 0, 100, True, 0, 100, "question.slider100", "welcome.single_hint",
               control="slider", slider_start=50,
               slider_keys=("scale.slider100.low", "scale.slider100.high", "scale.slider100.label",
                            "scale.slider100.value")),
)}

PAIRWISE_METHODS: tuple[str, ...] = tuple(m for m, e in METHODS.items() if e.pairwise)
RATING_METHODS: tuple[str, ...] = tuple(m for m, e in METHODS.items() if not e.pairwise)
