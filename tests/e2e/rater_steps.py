"""A rater's steps in a Playwright page, shared by the e2e tests: consent → screen check →
preload → practice → trials answered by keyboard.

A page that answers trials needs :data:`UNLOCK_PROBE` as an init script: :func:`answer` checks
with it that the controls unlocked only after every clip had ended.
"""

from __future__ import annotations

import re
from typing import Any

# Records, in the page, whether every video had ended at the moment the answer controls unlocked.
UNLOCK_PROBE = """
window.__unlocks = [];
new MutationObserver((changes) => {
  for (const c of changes) {
    if (c.target.id === "scale" && c.attributeName === "disabled" && !c.target.disabled) {
      const videos = [...document.querySelectorAll("#players video")];
      window.__unlocks.push({trial: document.getElementById("study").dataset.trial,
                             videos: videos.length, ended: videos.every((v) => v.ended)});
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["disabled"]});
"""


def enter(page: Any, base: str, slug: str) -> None:
    """Entry URL → consent → screen check, up to the study page."""
    page.goto(f"{base}/s/{slug}")
    page.get_by_role("checkbox").check()
    page.locator("#consent-submit").click()
    page.wait_for_url(re.compile(r"/check$"))
    page.locator("#check-continue").click()
    page.wait_for_url(re.compile(r"/study$"))


def preload_and_start(page: Any) -> None:
    """Wait for the preload bar to fill and Start to show, then press Start."""
    start = page.locator("#start")
    start.wait_for(state="visible")
    bar = page.evaluate("() => { const b = document.getElementById('preload-bar'); return [b.value, b.max]; }")
    assert bar[0] == bar[1] and bar[1] > 1, bar
    start.click()


def wait_state(page: Any, trial: str, *states: str) -> None:
    page.wait_for_function(
        "([k, s]) => { const d = document.getElementById('study').dataset;"
        " return d.trial === k && s.includes(d.state); }",
        arg=[trial, list(states)],
    )


def trial_shown(page: Any, trial: str) -> int:
    """Wait for ``trial`` to be on screen; check its controls are locked while it plays; return n."""
    wait_state(page, trial, "playing", "answer")
    locked, state, n = page.evaluate(
        "() => [document.getElementById('scale').disabled, document.getElementById('study').dataset.state,"
        " document.getElementById('progress').max]")
    assert locked or state != "playing"  # while the clips play the answer controls are locked
    return int(n)


def answer(page: Any, trial: str, key: str, reason: bool) -> None:
    """Once ``trial`` may be answered (after the clips ended): press ``key``, maybe a reason, Enter."""
    wait_state(page, trial, "answer")
    last = page.evaluate("() => window.__unlocks[window.__unlocks.length - 1]")
    assert last["trial"] == trial and last["ended"] and last["videos"] >= 1, last  # unlocked only after the end
    page.keyboard.press(key)
    if reason:
        page.keyboard.press("a")
    page.keyboard.press("Enter")


def practice(page: Any, key: str, reason: bool) -> None:
    """Answer the practice trial, read its feedback, continue to the real trials."""
    answer(page, "practice-1", key, reason)
    feedback = page.locator("#feedback")
    feedback.wait_for(state="visible")
    assert page.locator("#feedback-text").inner_text().strip()
    page.locator("#feedback-continue").click()
    page.locator("#message-continue").click()


def tab_to(page: Any, selector: str, limit: int = 20) -> None:
    """Press Tab until ``selector`` has the keyboard focus (as a keyboard-only rater would)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus by Tab")


def enter_by_keyboard(page: Any, base: str, slug: str) -> None:
    page.goto(f"{base}/s/{slug}")
    tab_to(page, "input[name=consent]")
    page.keyboard.press("Space")
    tab_to(page, "#consent-submit")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/check$"))
    tab_to(page, "#check-continue")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/study$"))
    page.locator("#start").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "start"  # focus moves to Start by itself
    page.keyboard.press("Enter")
