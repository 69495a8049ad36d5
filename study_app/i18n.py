"""Every rater-facing string, from one catalog per language (``study_app/catalog/<lang>.json``).

English is complete and is the fallback: a translation may cover only part of the
keys. A study picks its language in the manifest (``language: de`` loads
``de.json``). Templates call ``t("key", name=value)``; the browser gets the same
catalog as JSON, so there is exactly one place to translate.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, g

# A real folder of this package (package data in the wheel), unlike templates/ and static/.
CATALOG_DIR = Path(__file__).with_name("catalog")
FALLBACK = "en"
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


@lru_cache(maxsize=16)
def catalog(lang: str = FALLBACK) -> dict[str, str]:
    """The merged catalog of ``lang`` (English where the translation has no entry)."""
    strings = _read(FALLBACK)
    if lang != FALLBACK and _LANG_RE.match(lang):
        strings = {**strings, **_read(lang)}
    return strings


def _read(lang: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{lang}.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def languages() -> list[str]:
    """The languages a study can choose: one catalog file each."""
    return sorted(path.stem for path in CATALOG_DIR.glob("*.json"))


def current_lang() -> str:
    return g.get("lang", FALLBACK)


def t(key: str, lang: str | None = None, **values: Any) -> str:
    """The string ``key`` in ``lang`` (default: the current request's), formatted with ``values``.

    Raises
    ------
    KeyError
        For a key missing from the English catalog: a typo should fail tests, not show raw keys.
    """
    text = catalog(lang or current_lang())[key]
    return text.format(**values) if values else text


def init_app(app: Flask) -> None:
    app.jinja_env.globals["t"] = t
