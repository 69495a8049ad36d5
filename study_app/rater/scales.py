"""Answer scales as the rater sees them, and the mapping to stored values.

The rater answers in *screen* terms (pc5: 1 = strong preference for left … 5 =
strong preference for right). The server undoes the left/right position, so the
stored ``value`` of a pairwise trial is ``pref`` relative to (A, B): positive
means condition A was preferred (PROTOCOL.md §1). Ratings are stored as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study_app.i18n import t


@dataclass(frozen=True)
class ScreenScale:
    method: str
    low: int
    high: int
    pairwise: bool
    labels: tuple[tuple[int, str], ...]  # (screen value, catalog key), in display order; empty for sliders


SCREEN_SCALES: dict[str, ScreenScale] = {
    "pc5": ScreenScale("pc5", 1, 5, True, tuple((v, f"scale.pc5.{v}") for v in range(1, 6))),
    "2afc": ScreenScale("2afc", 1, 2, True, ((1, "scale.2afc.1"), (2, "scale.2afc.2"))),
    "ccr7": ScreenScale("ccr7", -3, 3, True, tuple((v, f"scale.ccr7.{v}") for v in range(-3, 4))),
    "acr5": ScreenScale("acr5", 1, 5, False, tuple((v, f"scale.acr.{v}") for v in range(1, 6))),
    "acr-hr": ScreenScale("acr-hr", 1, 5, False, tuple((v, f"scale.acr.{v}") for v in range(1, 6))),
    "dcr5": ScreenScale("dcr5", 1, 5, False, tuple((v, f"scale.dcr5.{v}") for v in range(1, 6))),
    "slider100": ScreenScale("slider100", 0, 100, False, ()),
}


#: Pairwise scales whose labels name a side; ccr7's labels compare, only its question names a side.
AB_WORDING = ("pc5", "2afc", "ccr7")


def on_scale(method: str, answer: int) -> bool:
    s = SCREEN_SCALES[method]
    return s.low <= answer <= s.high


def to_value(method: str, answer: int, a_left: bool) -> int:
    """Screen answer → stored value (``pref`` relative to (A, B), or the score)."""
    if method == "pc5":
        return 3 - answer if a_left else answer - 3
    if method == "2afc":
        chose_left = answer == 1
        return 1 if chose_left == a_left else -1
    if method == "ccr7":
        # The question rates the right clip against the left: "better" favours whichever is on the right.
        return -answer if a_left else answer
    return answer


def to_screen(method: str, value: int, a_left: bool) -> int:
    """Stored value → the screen answer that produces it (the inverse of :func:`to_value`)."""
    if method == "pc5":
        return 3 - value if a_left else value + 3
    if method == "2afc":
        a_chosen = value > 0
        return 1 if a_chosen == a_left else 2
    if method == "ccr7":
        return -value if a_left else value
    return value


def label_of(method: str, answer: int) -> str:
    for value, key in SCREEN_SCALES[method].labels:
        if value == answer:
            return t(key)
    return str(answer)


def client_scale(method: str) -> dict[str, Any]:
    """What the browser needs to draw the controls: options with labels and shortcut keys."""
    s = SCREEN_SCALES[method]
    options = [
        {"value": value, "label": t(key), "key": str(i + 1)}
        for i, (value, key) in enumerate(s.labels)
    ]
    if method in ("acr5", "acr-hr", "dcr5"):
        options.reverse()  # best at the top/left, as P.910 prints the scale; keys still follow the value
        for o in options:
            o["key"] = str(o["value"])
    out = {"method": method, "low": s.low, "high": s.high, "pairwise": s.pairwise, "options": options,
           "question": t(f"question.{method}")}
    if method in AB_WORDING:
        # The toggle view shows one clip at a time, so "left"/"right" become "A"/"B" (A is the
        # clip a left-side answer refers to: the stored value does not depend on the view).
        for value, option in zip((v for v, _ in s.labels), options, strict=True):
            option["label_ab"] = option["label"] if method == "ccr7" else t(f"scale.{method}.ab.{value}")
        out["question_ab"] = t(f"question.{method}.ab" if method == "ccr7" else f"question.{method}")
    return out
