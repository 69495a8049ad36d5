"""The study-wide settings of a manifest, and the list its problems are collected in.

:func:`read_settings` checks what applies to the whole study — name, slug, test method, seed,
language, display, reasons, panel, environment, scorer — and :class:`Problems` is where every
part of the manifest check (:mod:`study_app.manifest`) writes what is wrong, so an organizer
sees all problems at once. The field reference lives in ``docs/manifest.md``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from analysis.methods import METHODS
from study_app import i18n
from study_app.models import PANELS

DEFAULT_REASONS = ("colours", "brightness", "skin tone")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
#: How a pairwise trial's two clips are shown (docs/manifest.md, ``display``). Every value but
#: ``scaled`` shows clips at native size (one video pixel per screen pixel).
DISPLAYS = ("auto", "side-by-side", "toggle", "scaled")
# Column sizes of the database (study name, condition label, a response's ticked reasons).
MAX_NAME_CHARS = 200
MAX_REASONS_CHARS = 200


class Problems:
    """Every problem of one manifest, as ``file: field: message`` lines.

    Parameters
    ----------
    source : Path
        The manifest file (its name starts each line unless another file is named).
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self.items: list[str] = []
        self.fields: set[str] = set()

    def add(self, where: str, message: str, file: Path | str | None = None) -> None:
        """Record a problem of field ``where`` (in ``file``, else the manifest)."""
        self.items.append(f"{file or self.source.name}: {where}: {message}")
        self.fields.add(where)

    def touches(self, name: str) -> bool:
        """Whether a problem was reported for field ``name`` or anything inside it."""
        return any(f == name or f.startswith((f"{name}.", f"{name}[")) for f in self.fields)


def read_settings(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The study-wide settings of a manifest, defaults filled in.

    Parameters
    ----------
    raw : dict
        The manifest as read from YAML.
    problems : Problems
        Receives every problem found; a setting with a problem gets a harmless value.

    Returns
    -------
    dict
        ``name``, ``slug``, ``method``, ``seed``, ``max_sessions_per_rater``, ``session_timeout_minutes``,
        ``instructions``,
        ``language``, ``display``, ``reasons``, ``panel``, ``environment`` and ``scorer``.
    """
    out: dict[str, Any] = {}
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        problems.add("name", f"must be text (got {type(name).__name__})")
    elif not (name or "").strip():
        problems.add("name", "required: a non-empty study name")
    elif len(name.strip()) > MAX_NAME_CHARS:
        problems.add("name", f"at most {MAX_NAME_CHARS} characters (got {len(name.strip())})")
    out["name"] = name.strip() if isinstance(name, str) else ""
    slug = raw.get("slug")
    if slug is None and out["name"]:
        slug = _slugify(out["name"])
        if not SLUG_RE.match(slug):
            problems.add("slug", f"cannot be made from the name ('{slug}'): give one (2–63 of a-z, 0-9, '-')")
    elif slug is not None and (not isinstance(slug, str) or not SLUG_RE.match(slug)):
        problems.add("slug", f"'{slug}' must be 2–63 characters of a-z, 0-9 and '-', starting with a letter/digit")
    out["slug"] = slug or ""
    method = raw.get("method")
    if method not in METHODS:
        problems.add("method", f"unknown method '{method}'; known: {', '.join(METHODS)}")
    out["method"] = method
    out["seed"] = whole_number(raw, "seed", problems, default=0, low=0, high=2**31 - 1)
    out["max_sessions_per_rater"] = whole_number(raw, "max_sessions_per_rater", problems, default=1, low=1)
    out["session_timeout_minutes"] = _timeout(raw, problems)
    out["instructions"] = _text(raw, "instructions", problems, default="")
    out["language"] = _language(raw, problems)
    out["display"] = _display(raw, problems)
    out["reasons"] = _reasons(raw, problems, method)
    out["panel"] = _panel(raw.get("panel"), problems)
    out["environment"] = _environment(raw.get("environment"), problems)
    out["scorer"] = _scorer(raw.get("scorer"), problems)
    return out


def _scorer(value: Any, problems: Problems) -> dict[str, Any] | None:
    """Optional objective scorer ``{name, options}`` (or just a name); built once to check it.

    Stored normalised with the study; ``panelrank score-study`` and ``analyze-study`` use it
    by default (docs/scorers.md).
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        problems.add("scorer", "must be a scorer name or a mapping {name, options}")
        return None
    for key in sorted(set(value) - {"name", "options"}):
        problems.add(f"scorer.{key}", "unknown field (only name and options)")
    name, options = value.get("name"), value.get("options") or {}
    if not isinstance(name, str) or not name.strip():
        problems.add("scorer.name", "required: the name of a registered scorer (e.g. handcrafted)")
        return None
    if not isinstance(options, dict):
        problems.add("scorer.options", "must be a mapping of option: value")
        return None
    from analysis.objective.base import ScorerError, UnknownScorerError, available_scorers, scorer_from_config

    config = {"name": name.strip(), "options": dict(options)}
    try:
        scorer_from_config(config)
    except UnknownScorerError:
        problems.add("scorer.name", f"unknown scorer '{name}'; registered: {', '.join(available_scorers())}")
        return None
    except (TypeError, ValueError, ScorerError, OSError, ImportError) as exc:
        problems.add("scorer.options", f"scorer '{name}' rejects its options: {exc}")
        return None
    return config


def _timeout(raw: dict[str, Any], problems: Problems) -> float:
    """``session_timeout_minutes``: a number > 0 (fractions allowed), default 60."""
    value = raw.get("session_timeout_minutes", 60)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        problems.add("session_timeout_minutes", f"must be a number of minutes above 0, got {value!r}")
        return 60.0
    return float(value)


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]


def whole_number(raw: dict[str, Any], key: str, problems: Problems, default: int | None = None,
         low: int | None = None, high: int | None = None, where: str | None = None) -> int:
    """``raw[key]`` as a whole number within ``[low, high]``, or a problem recorded.

    Parameters
    ----------
    raw : dict
        The mapping the field is in.
    key : str
        The field.
    problems : Problems
        Receives a problem when the value is no whole number or out of range.
    default : int, optional
        The value of a missing field.
    low, high : int, optional
        The allowed range (either end open when None).
    where : str, optional
        The field's name in a problem (default ``key``), e.g. ``design.k``.

    Returns
    -------
    int
        The value (``default`` or 0 when it is no whole number).
    """
    value = raw.get(key, default)
    where = where or key
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(where, f"must be a whole number (got {value!r})")
        return default or 0
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        problems.add(where, f"must be {bounds} (got {value})")
    return value


def _text(raw: dict[str, Any], key: str, problems: Problems, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        problems.add(key, f"must be text (got {type(value).__name__})")
        return default
    return value


def _language(raw: dict[str, Any], problems: Problems) -> str:
    lang = _text(raw, "language", problems, default=i18n.FALLBACK)
    if lang not in i18n.languages():
        problems.add("language", f"no rater text catalog '{lang}'; available: {', '.join(i18n.languages())}")
        return i18n.FALLBACK
    return lang


def _display(raw: dict[str, Any], problems: Problems) -> str:
    value = raw.get("display", "auto")
    if value not in DISPLAYS:
        problems.add("display", f"unknown display '{value}'; known: {', '.join(DISPLAYS)}")
        return "auto"
    return str(value)


def _reasons(raw: dict[str, Any], problems: Problems, method: Any) -> list[str]:
    if "reasons" not in raw:
        pairwise = method in METHODS and METHODS[method].pairwise
        return list(DEFAULT_REASONS) if pairwise else []
    value = raw["reasons"]
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.add("reasons", "must be a list of non-empty texts (or [] to skip the question)")
        return []
    if len(set(value)) != len(value):
        problems.add("reasons", "lists the same reason twice")
    if any(";" in v for v in value):
        problems.add("reasons", "a reason may not contain ';' (it separates reasons in exports)")
    if len(";".join(v.strip() for v in value)) > MAX_REASONS_CHARS:
        # Every reason may be ticked at once; the stored answer must still fit.
        problems.add("reasons", f"together at most {MAX_REASONS_CHARS} characters (separators included)")
    return [v.strip() for v in value]


def _panel(value: Any, problems: Problems) -> dict[str, Any]:
    if value is None:
        value = {"name": "none"}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        problems.add("panel", "must be a mapping with at least 'name'")
        return {"name": "none"}
    name = value.get("name", "none")
    if name not in PANELS:
        problems.add("panel.name", f"unknown panel '{name}'; known: {', '.join(PANELS)}")
    unknown = set(value) - {"name", "completion_code", "completion_url", "screen_out_code", "screen_out_url"}
    for key in sorted(unknown):
        problems.add(f"panel.{key}", "unknown field")
    for key in ("completion_code", "screen_out_code"):
        code = value.get(key)
        if code is not None and not (isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", code)):
            problems.add(f"panel.{key}", "must be 1–64 letters, digits, '_' or '-'")
    for key in ("completion_url", "screen_out_url"):
        url = value.get(key)
        if url is not None and urlparse(str(url)).scheme not in ("http", "https"):
            problems.add(f"panel.{key}", f"'{url}' is not an http(s) URL")
    if name == "prolific" and not value.get("completion_code"):
        problems.add("panel.completion_code", "required for Prolific (the code in its completion URL)")
    return {"name": name, **{k: v for k, v in value.items() if k != "name"}}


def _environment(value: Any, problems: Problems) -> dict[str, Any]:
    env = {"min_width": None, "min_height": None, "allow_mobile": False}
    if value is None:
        return env
    if not isinstance(value, dict):
        problems.add("environment", "must be a mapping")
        return env
    for key in sorted(set(value) - set(env)):
        problems.add(f"environment.{key}", "unknown field")
    for key in ("min_width", "min_height"):
        if value.get(key) is not None:
            env[key] = whole_number(value, key, problems, low=1, where=f"environment.{key}")
    allow = value.get("allow_mobile", False)
    if not isinstance(allow, bool):
        problems.add("environment.allow_mobile", "must be true or false")
    env["allow_mobile"] = bool(allow)
    return env
