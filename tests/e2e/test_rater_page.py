"""The rater page as a crowd worker meets it (issue 10), in headless Chromium against a live server.

* Keyboard answers: every key and key sequence, in A-left and B-left trials, at 1280×720 and
  1920×1080; the exported ``pref`` is what was highlighted when Enter was pressed.
* Two players in sync: both players' ``currentTime`` sampled every animation frame, on 720p
  clips at native size under a throttled network, side by side and in the toggle view: no clip
  frozen more than 250 ms while the other advances, p95 drift ≤ 40 ms (figures printed).
* The screen check: a window too small for the study waits for a resize; only "I cannot" ends it.
* No dead ends: Back/Forward, a second tab answering the same trial, 500s on ``/api/trial``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import select

from study_app import db
from study_app.demo.clipset import make_clip
from study_app.export import votes_frame
from study_app.models import Session, Study
from tests.e2e.rater_steps import enter, enter_by_keyboard, preload_and_start, wait_state
from tests.rater_support import make_study

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

TIMEOUT_MS = 30_000
HD = {"width": 1280, "height": 720}
FULL_HD = {"width": 1920, "height": 1080}
# Two 720p clips side by side at native size: 2 × 1280 + the 16 px gap.
WIDE = {"width": 2576, "height": 1000}
# A 1366×768 laptop screen minus the browser's own bars.
LAPTOP = {"width": 1366, "height": 657}
# 4 Mbit/s down with 150 ms latency (Chrome DevTools' network emulation, bytes per second).
THROTTLED = {"offline": False, "latency": 150, "downloadThroughput": 500_000, "uploadThroughput": 250_000}
FREEZE_LIMIT_MS = 250
DRIFT_P95_LIMIT_MS = 40

# Both players' clocks, every animation frame, while a pair trial is on screen.
SAMPLER = """
window.__samples = [];
(function sample() {
  const v = [...document.querySelectorAll('#players video')];
  if (v.length === 2) {
    window.__samples.push([performance.now(), document.getElementById('study').dataset.trial,
      ...v.flatMap((x) => [x.currentTime, x.paused, x.ended, x.seeking])]);
  }
  requestAnimationFrame(sample);
})();
"""

# pc5 screen answers (1 = strong preference for left … 5 = strong for right) and the keys that
# choose them: arrows start from "no preference" and stop at the ends.
PC5_KEYS: list[tuple[list[str], int]] = [
    (["ArrowLeft"], 2), (["ArrowRight"], 4), (["ArrowLeft", "ArrowLeft"], 1),
    (["ArrowRight", "ArrowRight"], 5), (["ArrowLeft"] * 4, 1), (["ArrowRight"] * 4, 5),
    (["4", "ArrowLeft"], 3), (["1", "ArrowLeft"], 1), (["5", "ArrowRight"], 5), (["2", "ArrowRight"], 3),
    (["1"], 1), (["2"], 2), (["3"], 3), (["4"], 4), (["5"], 5),
]
# ccr7 screen answers −3 … 3 (keys 1 … 7, left to right).
CCR7_KEYS: list[tuple[list[str], int]] = [
    (["ArrowLeft"], -1), (["ArrowRight"], 1), (["ArrowLeft"] * 3, -3), (["ArrowLeft"] * 5, -3),
    (["ArrowRight"] * 5, 3), (["1"], -3), (["7"], 3), (["4"], 0), (["4", "ArrowRight"], 1),
]


def _context(browser: Any, viewport: dict[str, int], *scripts: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    for script in scripts:
        context.add_init_script(script)
    return context, context.new_page()


def _frame(app: Any, slug: str) -> Any:
    with app.app_context(), db.transaction(app) as s:
        return votes_frame(s, s.scalar(select(Study).where(Study.slug == slug)))


def _plain(slug: str, method: str, n: int) -> dict[str, Any]:
    """Demo-manifest overrides for a session of ``n`` main trials and nothing else."""
    return {"slug": slug, "method": method, "trials_per_session": n, "repeats_per_session": 0,
            "votes_per_pair": 1, "gold": None, "gold_per_session": 0, "training": None}


# --------------------------------------------------------------------------- keyboard answers


def _answer_by_keys(page: Any, trial: str, keys: list[str], reason: bool) -> int:
    """Press ``keys`` once ``trial`` unlocks; return the highlighted screen value; confirm."""
    wait_state(page, trial, "answer")
    for key in keys:
        page.keyboard.press(key)
    chosen = page.evaluate("() => document.querySelector('#scale-options input:checked').value")
    if reason:
        page.keyboard.press("a")
    page.keyboard.press("Enter")
    return int(chosen)


def _keyboard_session(page: Any, base: str, slug: str, table: list[tuple[list[str], int]],
                      neutral: int) -> dict[int, int]:
    enter_by_keyboard(page, base, slug)
    wait_state(page, "1", "playing", "answer")
    # Before any key, nothing is chosen: a focused first option would look chosen (and wrap).
    assert page.evaluate("() => document.querySelector('#scale-options input:checked')") is None
    highlighted: dict[int, int] = {}
    for k, (keys, expected) in enumerate(table, start=1):
        value = _answer_by_keys(page, str(k), keys, reason=expected != neutral)
        assert value == expected, (keys, value, expected)
        highlighted[k - 1] = value
    page.wait_for_url(re.compile(r"/done$"))
    return highlighted


@pytest.mark.parametrize("viewport", [HD, FULL_HD], ids=["1280x720", "1920x1080"])
def test_pc5_keyboard_answers_are_stored_as_chosen(live_server: Any, browser: Any, viewport: dict[str, int]) -> None:
    slug = make_study(live_server.app, live_server.manifest,
                      **_plain(f"keys-pc5-{viewport['width']}", "pc5", len(PC5_KEYS)))
    context, page = _context(browser, viewport)
    highlighted = _keyboard_session(page, live_server.url, slug, PC5_KEYS, neutral=3)
    context.close()
    frame = _frame(live_server.app, slug)
    assert len(frame) == len(PC5_KEYS) and set(frame["shown_left"]) == {"a", "b"}  # both sides tried
    for _, row in frame.iterrows():
        screen = highlighted[row["position"]]
        assert row["pref"] == (3 - screen if row["shown_left"] == "a" else screen - 3), row.to_dict()


def test_ccr7_keyboard_answers_are_stored_as_chosen(live_server: Any, browser: Any) -> None:
    slug = make_study(live_server.app, live_server.manifest, **_plain("keys-ccr7", "ccr7", len(CCR7_KEYS)))
    context, page = _context(browser, HD)
    highlighted = _keyboard_session(page, live_server.url, slug, CCR7_KEYS, neutral=0)
    context.close()
    frame = _frame(live_server.app, slug)
    assert len(frame) == len(CCR7_KEYS) and set(frame["shown_left"]) == {"a", "b"}
    for _, row in frame.iterrows():
        screen = highlighted[row["position"]]
        # ccr7 rates the right clip against the left: "better" favours whichever is on the right.
        assert row["pref"] == (-screen if row["shown_left"] == "a" else screen), row.to_dict()


# --------------------------------------------------------------------------- 720p clips at native size


@pytest.fixture(scope="module")
def hd_study(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """pc5 over 3 s 720p clips, two contents × two conditions, both pairs in one session."""
    root = tmp_path_factory.mktemp("hd")
    stimuli = []
    for content in ("c1", "c2"):
        for cond in ("source", "dark"):
            path = root / content / f"{cond}.mp4"
            path.parent.mkdir(exist_ok=True)
            make_clip(path, content, cond, width=1280, height=720, seconds=3, fps=25)
            stimuli.append({"content": content, "condition": cond, "path": str(path)})
    manifest = root / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "720p at native size", "slug": "hd-native", "method": "pc5", "conditions": ["source", "dark"],
        "stimuli": stimuli, "votes_per_pair": 3, "trials_per_session": 2, "repeats_per_session": 0,
        "reasons": ["sharpness"], "max_sessions_per_rater": 1, "panel": {"name": "none", "completion_code": "HD-DONE"},
    }))
    return make_study(live_server.app, manifest)


def _throttle(context: Any, page: Any) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", THROTTLED)


def sync_figures(samples: list[list[Any]]) -> dict[str, float]:
    """Drift (both playing) and the longest time one player stood still while the other ran.

    ``samples`` rows: [ms, trial, t0, paused0, ended0, seeking0, t1, paused1, ended1, seeking1].
    """
    drifts: list[float] = []
    frozen = 0.0
    by_trial: dict[str, list[list[Any]]] = {}
    for row in samples:
        by_trial.setdefault(row[1], []).append(row)
    for rows in by_trial.values():
        for r in rows:
            if not (r[3] or r[4] or r[5] or r[7] or r[8] or r[9]):
                drifts.append(abs(r[2] - r[6]) * 1000)
        for me, other in ((2, 6), (6, 2)):
            since = 0
            for k in range(1, len(rows)):
                if rows[k][me] != rows[since][me]:
                    since = k
                    continue
                if rows[k][me + 2]:  # this player ended: standing still is right
                    since = k
                    continue
                if rows[k][other] > rows[since][other] and not rows[k][other + 1]:
                    frozen = max(frozen, rows[k][0] - rows[since][0])
    arr = np.asarray(drifts or [0.0])
    return {"samples": float(len(drifts)), "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)), "max": float(arr.max()), "frozen_ms": frozen}


def _take_samples(page: Any) -> list[list[Any]]:
    """The sampler's rows so far (read before a page change loses them), then a fresh start."""
    return page.evaluate("() => window.__samples.splice(0)")


def _check_sync(samples: list[list[Any]], label: str) -> None:
    figures = sync_figures(samples)
    print(f"\n{label}: {figures['samples']:.0f} samples with both playing; drift p50 {figures['p50']:.1f} ms, "
          f"p95 {figures['p95']:.1f} ms, max {figures['max']:.1f} ms; "
          f"longest one-sided freeze {figures['frozen_ms']:.0f} ms")
    assert figures["samples"] > 50, figures
    assert figures["p95"] <= DRIFT_P95_LIMIT_MS, figures
    assert figures["frozen_ms"] <= FREEZE_LIMIT_MS, figures


def _visible_video(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => {
        const shown = [...document.querySelectorAll('#players video')]
            .filter((v) => getComputedStyle(v).opacity !== '0');
        const r = shown[0].getBoundingClientRect();
        return {count: shown.length, w: r.width, h: r.height, top: r.top, bottom: r.bottom, left: r.left,
                badge: document.querySelector('#players figcaption').dataset.clip,
                label: document.querySelector('#scale-options .choice span').firstChild.textContent};
    }""")


def test_toggle_view_shows_720p_at_native_size_in_1280x720(
        live_server: Any, browser: Any, hd_study: str, tmp_path: Path) -> None:
    """The gate passes a 1280×720 window for 720p pairs; each trial shows one clip at 1280×720,
    fully in view while it plays; Space switches A/B on the same timeline; the answers unlock
    only once both clips were seen playing; the scale speaks of A and B; the vote is stored as
    the A/B answer given."""
    context, page = _context(browser, HD, SAMPLER)
    _throttle(context, page)
    enter_by_keyboard(page, live_server.url, hd_study)
    # Trial 1: switch to B while playing, then answer "weak preference for A" (←).
    wait_state(page, "1", "playing")
    page.wait_for_function("() => document.querySelector('#players video').currentTime > 0.3")
    seen = _visible_video(page)
    # Switch at once, while the clips still play (a slow screenshot first could miss the end).
    page.keyboard.press("Space")
    assert _visible_video(page)["badge"] == "B"
    assert page.evaluate("document.getElementById('study').dataset.view") == "toggle"
    assert seen["count"] == 1 and (seen["w"], seen["h"]) == (1280, 720), seen
    assert seen["top"] > -1 and seen["bottom"] < HD["height"] + 1 and seen["left"] == 0, seen  # sub-pixel scroll
    assert seen["badge"] == "A" and seen["label"] == "Strong preference for A", seen
    page.screenshot(path=str(tmp_path / "toggle-b.png"))
    wait_state(page, "1", "answer")
    samples = _take_samples(page)
    assert page.evaluate("document.getElementById('scaled-note').hidden")
    # Unlocked: the answers are scrolled into view (the clip filled the window while it played).
    page.wait_for_function("() => document.getElementById('confirm').getBoundingClientRect().bottom <= innerHeight")
    page.screenshot(path=str(tmp_path / "toggle-answer.png"))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("a")  # the reason, ticked by its letter: the focus is now on its checkbox
    page.keyboard.press("Space")  # ... and Space still switches the clips, it does not untick it
    assert _visible_video(page)["badge"] == "A"
    assert page.evaluate("document.querySelector('#reason-options input').checked")
    page.keyboard.press("Enter")
    # Trial 2: never switched, so the answers stay locked after the clips end; a replay with a
    # switch unlocks them.
    wait_state(page, "2", "playing")
    page.wait_for_function("() => document.getElementById('watch-hint').textContent.includes('Space')")
    assert page.evaluate("document.getElementById('scale').disabled")
    page.keyboard.press("r")  # Replay by its key
    page.wait_for_function("() => !document.querySelector('#players video').paused")
    page.keyboard.press("Space")
    wait_state(page, "2", "answer")
    samples += _take_samples(page)
    page.keyboard.press("5")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/done$"))
    _check_sync(samples, "toggle view, 720p at 1280x720, throttled")
    context.close()
    frame = _frame(live_server.app, hd_study)
    rows = frame.sort_values("position")
    assert len(rows) == 2
    first, second = rows.iloc[0], rows.iloc[1]
    assert first["pref"] == (1 if first["shown_left"] == "a" else -1)  # weak preference for A (left)
    assert second["pref"] == (-2 if second["shown_left"] == "a" else 2)  # strong preference for B (right)
    assert set(rows["display_scale"]) == {1.0} and set(rows["display_view"]) == {"toggle"}


def test_side_by_side_720p_stays_in_sync_under_a_throttled_network(
        live_server: Any, browser: Any, hd_study: str, tmp_path: Path) -> None:
    context, page = _context(browser, WIDE, SAMPLER)
    _throttle(context, page)
    enter_by_keyboard(page, live_server.url, hd_study)
    samples: list[list[Any]] = []
    for k in ("1", "2"):
        wait_state(page, k, "answer")
        sizes = page.evaluate("() => [...document.querySelectorAll('#players video')]"
                              ".map((v) => [v.getBoundingClientRect().width, v.getBoundingClientRect().height])")
        assert page.evaluate("document.getElementById('study').dataset.view") == "side-by-side"
        assert sizes == [[1280, 720], [1280, 720]], sizes
        if k == "1":
            page.screenshot(path=str(tmp_path / "side-by-side.png"))
            page.locator("#replay").click()  # a replay rewinds both while paused and restarts them together
            wait_state(page, k, "playing", "answer")
            page.wait_for_function("() => [...document.querySelectorAll('#players video')].every((v) => v.ended)")
        samples += _take_samples(page)
        page.keyboard.press("3")
        page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/done$"))
    _check_sync(samples, "side by side, 720p at 2576x1000, throttled")
    context.close()
    frame = _frame(live_server.app, hd_study)
    side = frame[frame["display_view"] == "side-by-side"]
    assert len(side) == 2 and set(side["display_scale"]) == {1.0} and set(side["plays"]) == {1, 2}


# --------------------------------------------------------------------------- the screen check


def test_a_laptop_window_waits_for_a_resize_and_only_i_cannot_screens_out(
        live_server: Any, browser: Any, hd_study: str) -> None:
    context, page = _context(browser, LAPTOP)
    page.goto(f"{live_server.url}/s/{hd_study}")
    page.get_by_role("checkbox").check()
    page.locator("#consent-submit").click()
    page.wait_for_url(re.compile(r"/check$"))
    status = page.locator("#check-status")
    assert "at least 1280 × 720" in status.inner_text() and page.locator("#check-continue").is_disabled()
    page.locator("#check-continue").click(force=True)  # a click on the disabled button does nothing
    assert page.url.endswith("/check")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_function("() => !document.getElementById('check-continue').disabled")
    assert "large enough" in status.inner_text() and page.locator("#check-cannot").is_hidden()
    page.set_viewport_size(LAPTOP)
    page.locator("#check-cannot").click()
    page.locator("#check-cannot-back").click()  # changing one's mind keeps the session
    assert page.url.endswith("/check")
    page.locator("#check-cannot").click()
    page.locator("#check-cannot-end").click()
    page.wait_for_url(re.compile(r"/screened-out$"))
    assert "smaller than the required 1280 × 720" in page.content()
    context.close()


# --------------------------------------------------------------------------- no dead ends


def test_back_and_forward_show_the_current_trial(live_server: Any, browser: Any) -> None:
    slug = make_study(live_server.app, live_server.manifest, **_plain("back-forward", "pc5", 4))
    context, page = _context(browser, HD)
    enter(page, live_server.url, slug)
    preload_and_start(page)
    _answer_by_keys(page, "1", ["1"], reason=True)
    wait_state(page, "2", "playing", "answer")
    page.go_back()  # to the screen check: the server sends the rater on to the study
    page.wait_for_url(re.compile(r"/study$"))
    preload_and_start(page)
    wait_state(page, "2", "playing", "answer")
    page.go_forward()
    page.wait_for_load_state()
    assert page.url.endswith("/study") or page.url.endswith("/check")
    page.wait_for_url(re.compile(r"/study$"))
    preload_and_start(page)
    wait_state(page, "2", "playing", "answer")
    _answer_by_keys(page, "2", ["5"], reason=True)
    wait_state(page, "3", "playing", "answer")
    context.close()
    assert len(_frame(live_server.app, slug)) == 2


def test_a_second_tab_answering_the_same_trial_moves_the_first_on(live_server: Any, browser: Any) -> None:
    slug = make_study(live_server.app, live_server.manifest, **_plain("two-tabs", "pc5", 4))
    context, first = _context(browser, HD)
    enter(first, live_server.url, slug)
    preload_and_start(first)
    wait_state(first, "1", "answer")
    second = context.new_page()
    second.goto(f"{live_server.url}/s/{slug}/study")
    preload_and_start(second)
    _answer_by_keys(second, "1", ["1"], reason=True)  # trial 1 answered in the second tab ...
    wait_state(second, "2", "playing", "answer")
    first.bring_to_front()
    _answer_by_keys(first, "1", ["5"], reason=True)  # ... and differently in the first
    wait_state(first, "2", "playing", "answer")
    assert "another tab" in first.locator("#notice").inner_text()
    context.close()
    frame = _frame(live_server.app, slug)
    assert len(frame) == 1 and abs(frame.iloc[0]["pref"]) == 2  # the second tab's strong preference


@pytest.mark.parametrize(("failures", "press"), [(2, False), (6, True), (5, False)])
def test_server_errors_on_the_next_trial_are_retried_then_offered_again(
        live_server: Any, browser: Any, failures: int, press: bool) -> None:
    """A few 500s are retried by the page itself; more show the reason and a Retry button, and
    the page goes on trying by itself (every 10 s) if the rater does not press it."""
    slug = make_study(live_server.app, live_server.manifest, **_plain(f"errors-{failures}", "pc5", 3))
    context, page = _context(browser, HD)
    enter(page, live_server.url, slug)
    preload_and_start(page)
    failed: list[str] = []

    def fail(route: Any) -> None:
        if len(failed) < failures:
            failed.append(route.request.url)
            route.fulfill(status=500, content_type="text/html", body="<h1>Internal Server Error</h1>")
        else:
            route.continue_()

    page.route(re.compile(r"/api/trial$"), fail)
    _answer_by_keys(page, "1", ["1"], reason=True)
    if failures > 4:
        retry = page.locator("#problem-retry")
        retry.wait_for(state="visible")
        assert "server error 500" in page.locator("#problem-text").inner_text()
        assert page.evaluate("document.activeElement.id") == "problem-retry"
        if press:
            page.keyboard.press("Enter")
    wait_state(page, "2", "playing", "answer")
    assert page.locator("#problem").is_hidden()
    _answer_by_keys(page, "2", ["3"], reason=False)
    wait_state(page, "3", "playing", "answer")
    context.close()
    assert len(failed) == failures and len(_frame(live_server.app, slug)) == 2


def test_a_session_ended_elsewhere_leads_back_to_the_study_link(live_server: Any, browser: Any) -> None:
    slug = make_study(live_server.app, live_server.manifest, **_plain("ended", "pc5", 3))
    context, page = _context(browser, HD)
    enter(page, live_server.url, slug)
    preload_and_start(page)
    wait_state(page, "1", "answer")
    with live_server.app.app_context(), db.transaction(live_server.app) as s:
        study = s.scalar(select(Study).where(Study.slug == slug))
        s.scalar(select(Session).where(Session.study_id == study.id, Session.rater_id.is_not(None))).status = \
            "screened_out"
    page.keyboard.press("1")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.locator("#message-continue").wait_for(state="visible")
    page.locator("#message-continue").click()
    page.wait_for_url(re.compile(r"/screened-out$"))
    context.close()
