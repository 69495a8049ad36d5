"""A rater's whole path in headless Chromium, against a live server.

* pc5: consent → screen check → preload bar → practice with feedback → trials by keyboard,
  controls locked until both clips ended, a reload mid-session resuming at the right trial,
  the completion code; then the export has one row per trial with the right ``pref`` sign.
* acr5: the single-clip path.
* The leak scan: every URL, header and body the browser received must be free of condition
  ids/labels, content ids and stimulus paths.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from study_app import db
from study_app.demo.clipset import make_clip
from study_app.export import votes_frame
from study_app.models import Condition, Content, Session, Stimulus, Study
from tests.e2e.rater_steps import (
    UNLOCK_PROBE,
    answer,
    enter,
    enter_by_keyboard,
    practice,
    preload_and_start,
    tab_to,
    trial_shown,
    wait_state,
)
from tests.rater_support import SMALL_SESSION, make_study

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT_MS = 20_000


class Recorder:
    """Everything the browser received: URL, headers and body of every response."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, response: Any) -> None:
        try:
            body = response.body()
        except Exception:  # redirects and aborted media requests have no body to read
            body = b""
        self.items.append({"url": response.url, "headers": response.all_headers(), "body": body,
                           "type": response.headers.get("content-type", "")})


def _page(browser: Any, viewport: dict[str, int] = VIEWPORT, init_script: str | None = None) -> tuple[Any, Any]:
    """A fresh browser context (its own cookies: a new rater) and a page in it."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    if init_script:
        context.add_init_script(init_script)
    return context, context.new_page()


def _context(browser: Any, recorder: Recorder) -> tuple[Any, Any]:
    context, page = _page(browser, init_script=UNLOCK_PROBE)
    page.on("response", recorder)
    return context, page


def _study(app: Any, slug: str) -> tuple[Any, ...]:
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study).where(Study.slug == slug))
        sess = s.scalar(select(Session).where(Session.study_id == study.id, Session.status != "planned"))
        trials = {t.position: (t.a_left, t.response.value if t.response else None,
                               t.response.max_drift_ms if t.response else None) for t in sess.trials}
        frame = votes_frame(s, study)
        return sess.status, trials, frame


def test_pc5_session_by_keyboard_with_reload(live_server: Any, browser: Any, tmp_path: Path) -> None:
    recorder = Recorder()
    context, page = _context(browser, recorder)
    enter(page, live_server.url, "demo")
    preload_and_start(page)
    practice(page, "1", reason=True)
    pressed: dict[int, int] = {}
    keys = ["1", "5", "3", "2", "4", "5", "1", "4"]
    n = trial_shown(page, "1")
    for k in range(1, n + 1):
        trial_shown(page, str(k))
        if k == 1:
            page.screenshot(path=str(tmp_path / "pc5-trial.png"))
        key = keys[k - 1]
        answer(page, str(k), key, reason=key != "3")
        pressed[k - 1] = int(key)
        if k == 2:
            page.wait_for_function("() => document.getElementById('study').dataset.trial === '3'")
            page.reload()
            preload_and_start(page)  # practice is not repeated after a reload
    page.wait_for_url(re.compile(r"/done$"))
    assert page.locator("#completion-code").inner_text().strip() == "DEMO-THANKS"
    context.close()

    status, trials, frame = _study(live_server.app, "demo")
    assert status == "completed" and len(trials) == n
    assert len(frame) == n and frame["position"].tolist() == sorted(pressed)
    for _, row in frame.iterrows():
        key = pressed[row["position"]]
        expected = (3 - key) if row["shown_left"] == "a" else (key - 3)
        assert row["pref"] == expected, (row.to_dict(), key)
    drifts = [d for _, _, d in trials.values() if d is not None]
    print(f"\nmax drift per trial (ms): {drifts}")
    _scan_for_leaks(live_server, "demo", recorder)


def test_acr_session(live_server: Any, browser: Any, tmp_path: Path) -> None:
    recorder = Recorder()
    context, page = _context(browser, recorder)
    enter(page, live_server.url, "demo-acr")
    preload_and_start(page)
    practice(page, "5", reason=False)
    n = trial_shown(page, "1")
    for k in range(1, n + 1):
        trial_shown(page, str(k))
        if k == 1:
            page.screenshot(path=str(tmp_path / "acr-trial.png"))
        answer(page, str(k), str(1 + k % 5), reason=False)
    page.wait_for_url(re.compile(r"/done$"))
    assert page.locator("#completion-code").inner_text().strip() == "DEMO-THANKS"
    context.close()
    status, _, frame = _study(live_server.app, "demo-acr")
    assert status == "completed" and len(frame) == n
    assert sorted(frame["score"].tolist()) == sorted(1 + k % 5 for k in range(1, n + 1))
    _scan_for_leaks(live_server, "demo-acr", recorder)


# --------------------------------------------------------------------------- the leak scan


def _secrets(app: Any, slug: str) -> tuple[list[str], list[str], list[str]]:
    """(names to find as whole words, file paths, organizer-written texts shown on purpose)."""
    with app.app_context(), db.transaction(app) as s:
        study = s.scalar(select(Study).where(Study.slug == slug))
        conds = s.scalars(select(Condition).where(Condition.study_id == study.id)).all()
        contents = s.scalars(select(Content).where(Content.study_id == study.id)).all()
        paths = [p for p in s.scalars(select(Stimulus.path).where(Stimulus.study_id == study.id))]
        manifest = study.manifest
    words = [c.key for c in conds] + [c.label for c in conds if c.label] + [c.key for c in contents]
    files = paths + sorted({Path(p).name for p in paths}) + sorted({str(Path(p).parent) for p in paths})
    authored = [manifest.get("instructions") or "", manifest.get("name") or "", *manifest.get("reasons", [])]
    authored += [t.get("feedback") or "" for t in manifest.get("training") or []]
    return words, files, [a for a in authored if a]


def _scan_for_leaks(server: Any, slug: str, recorder: Recorder) -> None:
    """No condition id/label, content id or stimulus path in anything the browser received.

    Names are matched as whole words, case-insensitively, in URLs, headers and text bodies.
    Texts the organizer wrote for raters (instructions, practice feedback, reasons, study
    name) are removed first: the demo's feedback says "too dark" on purpose, and that is
    not a leak. Media bodies are binary: they are searched for file paths and for the
    names of at least 4 characters, byte for byte.
    """
    words, files, authored = _secrets(server.app, slug)
    assert len(recorder.items) > 10
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(re.escape(w) for w in words) + r")(?![A-Za-z0-9_])",
                         re.IGNORECASE)
    found = []
    for item in recorder.items:
        meta = item["url"] + "\n" + "\n".join(f"{k}: {v}" for k, v in item["headers"].items())
        if item["type"].startswith("video/"):
            body = item["body"]
            hits = [w for w in words + files if len(w) >= 4 and w.encode() in body]
            text = ""
        else:
            text = item["body"].decode("utf-8", errors="replace")
            for a in sorted(authored, key=len, reverse=True):
                for form in {a, html.escape(a), html.escape(a, quote=False)}:
                    text = text.replace(form, " ")
            hits = []
        for where in (meta, text):
            hits += pattern.findall(where) + [f for f in files if f in where]
        if hits:
            found.append((item["url"], sorted(set(hits))))
    assert not found, found


# --------------------------------------------------------------------------- full-size clips, keyboard only


@pytest.fixture(scope="module")
def full_size(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two studies over real 1280×720 clips (one content, two conditions): pc5 shown scaled
    (``display: scaled``) and acr5."""
    root = tmp_path_factory.mktemp("full-size")
    for cond in ("source", "dark"):
        make_clip(root / f"{cond}.mp4", "c1", cond, width=1280, height=720, seconds=1, fps=25)
    manifest = root / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": "full-size clips", "slug": "full-pc5", "method": "pc5", "conditions": ["source", "dark"],
        "stimuli": [{"content": "c1", "condition": c, "path": f"{c}.mp4"} for c in ("source", "dark")],
        "votes_per_pair": 1, "trials_per_session": 1, "repeats_per_session": 0, "display": "scaled",
        "panel": {"name": "none", "completion_code": "FULL-DONE"},
    }))
    acr = {"slug": "full-acr", "method": "acr5", "votes_per_pair": None, "votes_per_stimulus": 1,
           "trials_per_session": 2, "reasons": [], "display": "auto"}
    return {"pc5": make_study(live_server.app, manifest), "acr5": make_study(live_server.app, manifest, **acr)}


def _frame(app: Any, slug: str) -> Any:
    with app.app_context(), db.transaction(app) as s:
        return votes_frame(s, s.scalar(select(Study).where(Study.slug == slug)))


def test_two_full_size_clips_are_scaled_to_fit_1280x720_and_it_is_recorded(
        live_server: Any, browser: Any, full_size: dict[str, str], tmp_path: Path) -> None:
    """Keyboard only, at the smallest window the gate accepts: both 1280-wide clips shrink so that
    they and the answer controls fit without scrolling; the scale reaches the export; Replay
    (reached with Tab, pressed with Enter) restarts both clips and counts as a play."""
    context, page = _page(browser)
    enter_by_keyboard(page, live_server.url, full_size["pc5"])
    wait_state(page, "1", "answer")
    layout = page.evaluate("""() => ({
        widths: [...document.querySelectorAll('#players video')].map((v) => v.getBoundingClientRect().width),
        confirm: document.getElementById('confirm').getBoundingClientRect().bottom,
        scroll: document.documentElement.scrollHeight,
        note: !document.getElementById('scaled-note').hidden})""")
    assert len(layout["widths"]) == 2 and all(w < 1280 / 2 for w in layout["widths"]), layout
    assert layout["confirm"] <= VIEWPORT["height"] and layout["scroll"] <= VIEWPORT["height"], layout
    assert layout["note"], "the rater is told that the clips are shown smaller"
    page.screenshot(path=str(tmp_path / "full-pc5-1280x720.png"))
    tab_to(page, "#replay")
    page.keyboard.press("Enter")  # Enter on Replay replays; it does not confirm the answer
    wait_state(page, "1", "answer")
    page.wait_for_function("() => [...document.querySelectorAll('#players video')].every((v) => v.ended)")
    page.keyboard.press("5")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/done$"))
    assert page.locator("#completion-code").inner_text().strip() == "FULL-DONE"
    context.close()
    row = _frame(live_server.app, full_size["pc5"]).iloc[0]
    assert row["plays"] == 2 and row["reason"] == "brightness"
    assert (row["window_w"], row["window_h"]) == (1280, 720)
    assert 0.3 < row["display_scale"] < 0.5  # (1280 − margins) / 2 / 1280, and the controls fit


def test_one_full_size_clip_plays_at_native_size_at_1920x1080(
        live_server: Any, browser: Any, full_size: dict[str, str], tmp_path: Path) -> None:
    context, page = _page(browser, {"width": 1920, "height": 1080})
    enter_by_keyboard(page, live_server.url, full_size["acr5"])
    for k in ("1", "2"):
        wait_state(page, k, "answer")
        size = page.evaluate("() => { const r = document.querySelector('#players video').getBoundingClientRect();"
                             " return [r.width, r.height, document.getElementById('scaled-note').hidden]; }")
        assert size == [1280, 720, True], size
        if k == "1":
            page.screenshot(path=str(tmp_path / "full-acr-1920x1080.png"))
        page.keyboard.press("4")
        page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/done$"))
    context.close()
    frame = _frame(live_server.app, full_size["acr5"])
    assert len(frame) == 2 and set(frame["display_scale"]) == {1.0} and set(frame["score"]) == {4}


def test_preload_failure_shows_the_error_and_retry_recovers(live_server: Any, browser: Any) -> None:
    """The first download of one clip fails: the rater sees why and a Retry button; Retry loads
    only what is missing and the study starts."""
    slug = "demo-retry"
    make_study(live_server.app, live_server.manifest, slug=slug, **SMALL_SESSION)
    context, page = _page(browser)
    failed: list[str] = []

    def fail_once(route: Any) -> None:
        if not failed:
            failed.append(route.request.url)
            route.fulfill(status=503, body="busy")
        else:
            route.continue_()

    page.route(re.compile(r"/media/[0-9a-f]+$"), fail_once)
    enter(page, live_server.url, slug)
    error = page.locator("#problem")
    error.wait_for(state="visible")
    assert "HTTP 503" in page.locator("#problem-text").inner_text()
    assert page.locator("#start").is_hidden()
    assert page.evaluate("document.activeElement.id") == "problem-retry"
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/media/" in r.url else None)
    page.keyboard.press("Enter")
    page.locator("#start").wait_for(state="visible")
    assert error.is_hidden()
    assert fetched == failed  # only the failed clip is fetched again
    context.close()
