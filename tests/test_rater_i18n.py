"""One catalog for every rater-facing string: every key used exists, translations fall back to
English, and no UI text collides with the demo's condition or content names (the leak scan
matches those as whole words)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from analysis.methods import METHODS
from study_app import i18n
from study_app.demo.builder import DEMO_MANIFEST
from study_app.manifest_settings import DISPLAYS

ROOT = Path(__file__).resolve().parent.parent
#: Pairwise methods whose toggle view has its own words (ccr7's labels compare, only its question names a side).
AB_WORDING = tuple(m for m, entry in METHODS.items() if entry.question_ab)
CATALOG = json.loads((ROOT / "study_app" / "catalog" / "en.json").read_text())
# The rater's browser code (static/js also holds the organizer's modules).
RATER_JS = [ROOT / "static" / "js" / f"{name}.js"
            for name in ("api", "check", "display", "done", "fresh", "i18n", "player", "preload", "study", "vote")]


def _used_keys() -> set[str]:
    keys: set[str] = set()
    sources = [*(ROOT / "templates" / "rater").glob("*.html"), *RATER_JS, *(ROOT / "study_app" / "rater").glob("*.py")]
    for path in sources:
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""", path.read_text()))
    return keys


def test_every_used_key_exists() -> None:
    used = _used_keys()
    assert len(used) > 40
    assert sorted(used - set(CATALOG)) == []
    # Keys made from a value: the screen check's words for each display, the toggle view's A/B scales.
    assert all(f"check.display.{d}" in CATALOG for d in DISPLAYS if d != "scaled")
    for method in AB_WORDING:
        assert all(f"scale.{method}.ab.{v}" in CATALOG for v, _ in METHODS[method].labels) or method == "ccr7"
    assert "question.ccr7.ab" in CATALOG
    for method, scale in METHODS.items():
        assert f"question.{method}" in CATALOG
        assert all(key in CATALOG for _, key in scale.labels)
        assert all(key in CATALOG for key in scale.catalog_keys)


def test_translation_falls_back_to_english(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "en.json").write_text(json.dumps(CATALOG))
    (tmp_path / "de.json").write_text(json.dumps({"trial.replay": "Nochmal abspielen"}))
    monkeypatch.setattr(i18n, "CATALOG_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        de = i18n.catalog("de")
        assert de["trial.replay"] == "Nochmal abspielen" and de["trial.confirm"] == "Confirm"
        assert i18n.t("trial.progress", lang="de", k=2, n=9) == "Trial 2 of 9"
        assert i18n.catalog("../etc") == i18n.catalog("en")  # not a language code: English only
    finally:
        i18n.catalog.cache_clear()


def test_ui_text_never_uses_demo_names() -> None:
    demo = yaml.safe_load(DEMO_MANIFEST.read_text())
    names = [c["id"] for c in demo["conditions"]] + [c["label"] for c in demo["conditions"]] + demo["contents"]
    text = "\n".join(CATALOG.values())
    for path in [*(ROOT / "templates" / "rater").glob("*.html"), *RATER_JS, ROOT / "static" / "css" / "rater.css"]:
        text += "\n" + path.read_text()
    for name in names:
        assert not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, re.IGNORECASE), name


# Rater-facing templates (and the base they extend): every visible word comes from the catalog.
RATER_TEMPLATES = [*(ROOT / "templates" / "rater").glob("*.html"), ROOT / "templates" / "base.html"]


def test_templates_have_no_hard_coded_text() -> None:
    """Text between tags, and labelling attributes, must come from ``t(...)`` (or data)."""
    for path in RATER_TEMPLATES:
        source = path.read_text()
        for attr, value in re.findall(r'\b(aria-label|title|placeholder|alt|value)="([^"]*)"', source):
            assert not re.search(r"[A-Za-z]{2}", re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", value)) or \
                (attr == "value" and value in ("yes",)), f"{path.name}: {attr}=\"{value}\""
        text = re.sub(r"\{% block body_class %\}.*?\{% endblock %\}", " ", source)  # a CSS class name
        text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", text, flags=re.S)
        text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]+>", " ", text)
        words = [w for w in re.findall(r"[A-Za-z]{2,}", text) if w != "panelrank"]  # the product's name
        assert words == [], f"{path.name}: hard-coded text {words}"


def test_rater_js_has_no_hard_coded_text() -> None:
    """The browser code shows only catalog strings: no literal sentence in a rater module."""
    allowed = {"missing string "}  # a developer's error for a key missing from the catalog
    for path in RATER_JS:
        for literal in re.findall(r'"([^"\n]*)"|`([^`\n]*)`', path.read_text()):
            text = next(x for x in literal if x) if any(literal) else ""
            words = re.sub(r"\$\{[^}]*\}", "", text)
            if re.search(r"[A-Za-z]+ [A-Za-z]+", words) and not any(a in text for a in allowed):
                raise AssertionError(f"{path.name}: literal text {text!r}")


def test_every_catalog_key_is_used() -> None:
    """No dead strings: a translator should not translate text no rater ever sees."""
    # The test methods' words are named in their registry entries (analysis/methods.py).
    sources = "\n".join(p.read_text() for p in [*RATER_TEMPLATES, *RATER_JS, *(ROOT / "study_app").rglob("*.py"),
                                                 ROOT / "analysis" / "methods.py"])
    # Keys built at run time: refusals, per-method questions and scale labels, API study states.
    dynamic = re.compile(r"^(refuse\.[a-z_]+\.(title|body)|question\..+|scale\.(pc5|2afc|ccr7|acr|dcr5)\.(ab\.)?-?\d"
                         r"|api\.(paused|closed)|check\.display\.[a-z-]+)$")
    unused = [k for k in CATALOG if k not in sources and not dynamic.match(k)]
    assert unused == []
