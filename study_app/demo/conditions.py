"""Conditions of the demo: named specs of degradation steps and the expected quality order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from study_app.demo.degradations import DEGRADATIONS, Degradation, check_strength

__all__ = ["DEMO_CONDITIONS", "EXPECTED_ORDER", "REFERENCE_CONDITION", "ConditionSpec", "normalize_condition"]

#: A condition spec: None / "source" (clean), a :data:`DEMO_CONDITIONS` name,
#: ``{"degradation": name, "strength": s}``, or a list of such dicts (applied in order).
ConditionSpec = None | str | Mapping[str, Any] | Sequence[Mapping[str, Any]]

REFERENCE_CONDITION = "source"

#: The demo's conditions (4 contents × these 6 = 24 clips). Strengths are chosen
#: so that every degradation is clearly visible at 1280×720 and the conditions
#: fall in the order of :data:`EXPECTED_ORDER`.
DEMO_CONDITIONS: dict[str, dict[str, Any] | None] = {
    "source": None,
    "enhanced": {"degradation": "enhance", "strength": 0.5},
    "noisy": {"degradation": "noise", "strength": 0.25},
    "blurred": {"degradation": "blur", "strength": 0.45},
    "dark": {"degradation": "under_exposure", "strength": 0.75},
    "compressed": {"degradation": "compression", "strength": 0.8},
}

#: Demo conditions from best to worst. The mild enhancement is designed to be
#: (slightly) preferred over the source; the degradations get progressively more
#: severe: mild noise, moderate blur, strong under-exposure, very heavy compression.
EXPECTED_ORDER: tuple[str, ...] = ("enhanced", "source", "noisy", "blurred", "dark", "compressed")


def normalize_condition(spec: ConditionSpec) -> list[tuple[Degradation, float]]:
    """Turn a condition spec into a list of ``(degradation, strength)`` steps.

    Parameters
    ----------
    spec : None, str, mapping or sequence of mappings
        ``None``, ``"source"`` or ``"reference"`` → no steps; a name in
        :data:`DEMO_CONDITIONS` → its spec; a degradation name → that
        degradation at strength 0.5; ``{"degradation": name, "strength": s}``
        (strength defaults to 0.5); or a list of such mappings.

    Returns
    -------
    list of (Degradation, float)

    Raises
    ------
    ValueError
        Unknown names, strengths outside ``[0, 1]``, unknown keys, or more than
        one ``compression`` step.
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec in ("source", "reference"):
            return []
        if spec in DEMO_CONDITIONS:
            return normalize_condition(DEMO_CONDITIONS[spec])
        if spec in DEGRADATIONS:
            return [(DEGRADATIONS[spec], 0.5)]
        raise ValueError(f"unknown condition {spec!r}; known: {sorted({*DEMO_CONDITIONS, *DEGRADATIONS})}")
    items: Sequence[Mapping[str, Any]] = [spec] if isinstance(spec, Mapping) else list(spec)
    steps: list[tuple[Degradation, float]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"a condition step must be a mapping, got {item!r}")
        extra = set(item) - {"degradation", "strength"}
        if extra:
            raise ValueError(f"unknown keys in condition spec: {sorted(extra)}")
        name = item.get("degradation")
        if name in (None, "source", "reference"):
            continue
        if name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {name!r}; known: {sorted(DEGRADATIONS)}")
        steps.append((DEGRADATIONS[name], check_strength(item.get("strength", 0.5))))
    if sum(d.is_encoder_setting for d, _ in steps) > 1:
        raise ValueError("at most one compression step per condition")
    return steps
