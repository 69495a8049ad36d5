"""How big a window the screen check asks for (study_app.rater.flow.window_need) and the
manifest's ``display`` field. The browser runs the same formula (static/js/display.js); the
e2e tests in tests/e2e/test_rater_page.py check that the two agree in a real window."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study_app.manifest import ManifestError, load
from study_app.manifest_settings import DISPLAYS
from study_app.rater.flow import GAP_PX, Display, window_need

HD = {"clip_w": 1280, "clip_h": 720}


@pytest.mark.parametrize(("display", "layout", "dpr", "need"), [
    ("auto", "pair", 1.0, (1280, 720)),  # the toggle view needs one clip
    ("toggle", "pair", 1.0, (1280, 720)),
    ("side-by-side", "pair", 1.0, (2 * 1280 + GAP_PX, 720)),
    ("side-by-side", "pair", 2.0, (1280 + GAP_PX, 360)),  # a HiDPI laptop: two 720p clips fit in 1296 CSS px
    ("auto", "pair", 1.25, (1024, 576)),  # 1280 / 1.25 exactly, not 1025
    ("side-by-side", "single", 1.0, (1280, 720)),  # one clip: side by side means nothing
    ("auto", "pair", None, (1280, 720)),  # no density measured: 1
    ("scaled", "pair", 2.0, (1280, 720)),  # scaled: the clip size, whatever the density
])
def test_window_need(display: str, layout: str, dpr: float | None, need: tuple[int, int]) -> None:
    assert window_need(Display(display, layout, **HD, min_w=None, min_h=None), dpr) == need


def test_the_manifest_minimum_is_a_floor() -> None:
    assert window_need(Display("auto", "pair", **HD, min_w=1400, min_h=700), 1.0) == (1400, 720)
    assert window_need(Display("scaled", "pair", **HD, min_w=800, min_h=450), 1.0) == (800, 450)


def test_display_is_checked_and_defaults_to_auto(demo_manifest_path: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(demo_manifest_path.read_text())
    raw.pop("display", None)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load(path).settings["display"] == "auto"
    raw["display"] = "stretched"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError) as err:
        load(path)
    assert err.value.problems == [f"{path.name}: display: unknown display 'stretched'; known: {', '.join(DISPLAYS)}"]
