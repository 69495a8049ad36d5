"""Scorer configurations: options, ``{name, options}`` configs, and resolving a scorer spec.

Pure functions (no click): what ``--scorer``/``--tiebreak`` and ``--option KEY=VALUE``
mean. A spec is a registered scorer name, a ``{name, options}`` mapping, or the path of a
scorer model file (``*.json``, written by ``panelrank fit-scorer``; see
:mod:`analysis.objective.scorer_model`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from . import base as obj_base

#: Errors a scorer can raise while being built or run, turned into clear CLI errors.
SCORER_ERRORS = (obj_base.ScorerError, obj_base.UnknownScorerError, ValueError, OSError, ImportError)


def parse_options(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["frames=16", "threads=false"]`` → ``{"frames": 16, "threads": False}``.

    Each value is read as JSON when it parses (numbers, ``true``/``false``, ``null``,
    lists, objects), otherwise kept as the plain string. A mapping passes through.

    Parameters
    ----------
    items : sequence of str, mapping or None
        ``KEY=VALUE`` strings (a later key wins), or options already parsed.

    Returns
    -------
    dict
        Empty for ``None``.

    Raises
    ------
    ValueError
        When an item has no ``=`` or an empty key.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r} is not of the form key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def normalise_scorer_config(config: str | Mapping[str, Any]) -> dict[str, Any]:
    """``"handcrafted"`` or ``{name, options}`` → ``{"name": ..., "options": {...}}``.

    Parameters
    ----------
    config : str or mapping
        A scorer name, or a mapping with a non-empty ``name`` and optional ``options``.

    Returns
    -------
    dict
        ``{"name": str, "options": dict}`` (new objects).

    Raises
    ------
    ValueError
        When ``name`` is missing or empty, ``options`` is not a mapping, or other keys
        are present.
    """
    if isinstance(config, str):
        return {"name": config, "options": {}}
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str) or not config["name"]:
        raise ValueError(f"a scorer is a name or a mapping {{name, options}}, got {config!r}")
    options = config.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"scorer options must be a mapping, got {options!r}")
    extra = sorted(set(config) - {"name", "options"})
    if extra:
        raise ValueError(f"unknown scorer key(s) {extra} (only name and options)")
    return {"name": str(config["name"]), "options": dict(options)}


def build_scorer(config: str | Mapping[str, Any]) -> obj_base.Scorer:
    """Instantiate a scorer from a name or ``{name, options}``; bad options are a ValueError.

    Parameters
    ----------
    config : str or mapping
        See :func:`normalise_scorer_config`.

    Returns
    -------
    Scorer

    Raises
    ------
    ValueError
        On a malformed config or an option the scorer does not take.
    UnknownScorerError
        When no scorer has that name.
    """
    cfg = normalise_scorer_config(config)
    try:
        return obj_base.scorer_from_config(cfg)
    except TypeError as exc:  # unexpected keyword: name the scorer and the option
        raise ValueError(f"scorer {cfg['name']!r}: bad option(s) {sorted(cfg['options'])}: {exc}") from exc


def is_model_file(spec: Any) -> bool:
    """True when ``spec`` names a scorer model file (``*.json``) rather than a scorer.

    Parameters
    ----------
    spec : object
        A ``--tiebreak``/``--scorer`` value.

    Returns
    -------
    bool
        By the suffix only; the file need not exist.
    """
    return isinstance(spec, str | os.PathLike) and str(spec).lower().endswith(".json")
