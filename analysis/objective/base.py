"""The scorer hook: protocol, pairwise result, order-independence and discovery.

A *scorer* is anything that can look at two stimulus files of the same content and
say how likely a rater is to prefer the first (PROTOCOL.md §4). The core needs only
five members::

    name: str                       # registry name, e.g. "handcrafted"
    version: str                    # changes whenever the numbers could change
    features(path) -> dict[str, float]
    aux(path) -> tuple of 11 floats in [0, 1]   (a_4 falls with quality, the rest rise)
    compare(path_a, path_b) -> PairScore(p, aux_a, aux_b)

A scorer *may* also implement ``compare_features(features_a, features_b, aux_a, aux_b)
-> PairScore``; when it does, batch scoring (:func:`analysis.objective.cache.score_pairs`)
computes the per-file work once per stimulus and pairs become nearly free.

Third-party scorers register through the entry-point group ``panelrank.scorers``;
the value is a class or factory called with the scorer's keyword options::

    [project.entry-points."panelrank.scorers"]
    my-vqa = "my_package.vqa:MyScorer"

The built-ins are registered the same way and, so discovery works from a source tree
that has not been reinstalled, also known here directly (:data:`BUILTIN_SCORERS`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from os import PathLike
from typing import Any, Protocol, runtime_checkable

#: Number of auxiliary per-stimulus scores a scorer returns (the challenge's a_1..a_11).
N_AUX = 11

#: 0-based position of a_4, the one auxiliary score that *falls* as quality rises (noise).
NOISE_AUX_INDEX = 3

#: Entry-point group that third-party scorers register in.
ENTRY_POINT_GROUP = "panelrank.scorers"

#: Built-in scorers, ``name -> "module:attribute"``; the same lines live in pyproject.toml.
BUILTIN_SCORERS: dict[str, str] = {
    "handcrafted": "analysis.objective.scorers.handcrafted:HandcraftedScorer",
    "siamese-checkpoint": "analysis.objective.scorers.checkpoint:CheckpointScorer",
    "command": "analysis.objective.scorers.command:CommandScorer",
}

StrPath = str | PathLike[str]


class ScorerError(RuntimeError):
    """A scorer could not produce a valid answer (bad file, failed command, bad output)."""


class UnknownScorerError(LookupError):
    """No scorer is registered under the requested name."""


def check_aux(values: Iterable[float], *, what: str = "aux") -> tuple[float, ...]:
    """Validate an auxiliary-score vector and return it as a tuple of floats.

    Parameters
    ----------
    values : iterable of float
        Exactly :data:`N_AUX` numbers, each finite and in [0, 1].
    what : str
        Used in the error message (e.g. ``"aux_a from command 'vqa'"``).

    Returns
    -------
    tuple of float
        The :data:`N_AUX` values.

    Raises
    ------
    ScorerError
        If the length is wrong or a value is not a finite number in [0, 1].
    """
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ScorerError(f"{what}: expected {N_AUX} numbers, got {values!r}") from exc
    if len(out) != N_AUX:
        raise ScorerError(f"{what}: expected {N_AUX} values, got {len(out)}")
    bad = [i + 1 for i, v in enumerate(out) if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise ScorerError(f"{what}: values must lie in [0, 1]; offending a_k for k = {bad}")
    return out


def check_probability(p: Any, *, what: str = "p") -> float:
    """Validate a preference probability (finite, in [0, 1]) and return it as a float.

    Parameters
    ----------
    p : object
        Anything :class:`float` accepts.
    what : str
        Used in the error message.

    Returns
    -------
    float

    Raises
    ------
    ScorerError
        If ``p`` is not a number or not a finite value in [0, 1].
    """
    try:
        value = float(p)
    except (TypeError, ValueError) as exc:
        raise ScorerError(f"{what}: expected a number, got {p!r}") from exc
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ScorerError(f"{what}: must be a probability in [0, 1], got {value!r}")
    return value


@dataclass(frozen=True)
class PairScore:
    """One pairwise answer of a scorer.

    Attributes
    ----------
    p
        Probability that a rater prefers stimulus A over stimulus B.
    aux_a, aux_b
        The 11 auxiliary scores of A and of B, each in [0, 1]; ``aux[3]`` (a_4) is the
        noise score, higher meaning worse.
    """

    p: float
    aux_a: tuple[float, ...]
    aux_b: tuple[float, ...]

    def __post_init__(self) -> None:
        # Validate once here so every consumer can trust a PairScore blindly.
        object.__setattr__(self, "p", check_probability(self.p))
        object.__setattr__(self, "aux_a", check_aux(self.aux_a, what="aux_a"))
        object.__setattr__(self, "aux_b", check_aux(self.aux_b, what="aux_b"))

    def swapped(self) -> PairScore:
        """The same answer seen from B's side: ``p -> 1 - p`` and the aux vectors exchanged.

        Returns
        -------
        PairScore
        """
        return PairScore(1.0 - self.p, self.aux_b, self.aux_a)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"p": ..., "aux_a": [...], "aux_b": [...]}`` (the command adapter's format).

        Returns
        -------
        dict
        """
        return {"p": self.p, "aux_a": list(self.aux_a), "aux_b": list(self.aux_b)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairScore:
        """Inverse of :meth:`to_dict`; raises :class:`ScorerError` on a malformed mapping.

        Parameters
        ----------
        data : mapping
            With keys ``p``, ``aux_a``, ``aux_b`` (others are ignored).

        Returns
        -------
        PairScore

        Raises
        ------
        ScorerError
            When a key is missing or a value is invalid (see :func:`check_probability`,
            :func:`check_aux`).
        """
        missing = [k for k in ("p", "aux_a", "aux_b") if k not in data]
        if missing:
            raise ScorerError(f"missing key(s) {missing} in {dict(data)!r}")
        # __post_init__ validates (and converts to tuples) whatever the mapping held.
        return cls(data["p"], data["aux_a"], data["aux_b"])


@runtime_checkable
class Scorer(Protocol):
    """What the platform needs from an objective scorer (see the module docstring)."""

    name: str
    version: str

    def features(self, path: StrPath) -> dict[str, float]:
        """Per-stimulus descriptors (names are scorer-specific, values finite floats).

        Parameters
        ----------
        path : str or PathLike
            The stimulus file.

        Returns
        -------
        dict of str to float
        """
        ...

    def aux(self, path: StrPath) -> tuple[float, ...]:
        """The 11 auxiliary scores of one stimulus, each in [0, 1].

        Parameters
        ----------
        path : str or PathLike
            The stimulus file.

        Returns
        -------
        tuple of float
            :data:`N_AUX` values.
        """
        ...

    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """p(A preferred over B) and both aux vectors.

        Parameters
        ----------
        path_a, path_b : str or PathLike
            The two stimuli, A shown first.

        Returns
        -------
        PairScore
        """
        ...


def p_sym_value(p_ab: float, p_ba: float) -> float:
    """Order-independent preference from the two orders: ``(p(A,B) + 1 - p(B,A)) / 2``.

    Parameters
    ----------
    p_ab : float
        p(A preferred over B) with A first.
    p_ba : float
        p(B preferred over A) with B first.

    Returns
    -------
    float
        In [0, 1] when both inputs are.
    """
    return (float(p_ab) + 1.0 - float(p_ba)) / 2.0


def symmetric_compare(scorer: Scorer, path_a: StrPath, path_b: StrPath) -> PairScore:
    """Ask the scorer both ways round and combine so the answer cannot depend on order.

    ``p`` is :func:`p_sym_value`; each aux vector is the mean of what the two calls
    reported for that stimulus (a Siamese model may see a stimulus differently in the
    first and the second slot). ``symmetric_compare(s, b, a)`` equals
    ``symmetric_compare(s, a, b).swapped()`` up to float rounding.

    Parameters
    ----------
    scorer : Scorer
    path_a, path_b : str or PathLike
        The two stimuli.

    Returns
    -------
    PairScore
        The symmetric answer for (A, B).

    Raises
    ------
    ScorerError
        Whatever the scorer raises.
    """
    ab = scorer.compare(path_a, path_b)
    ba = scorer.compare(path_b, path_a)
    return combine_orders(ab, ba)


def combine_orders(ab: PairScore, ba: PairScore) -> PairScore:
    """Combine ``compare(A, B)`` and ``compare(B, A)`` into the symmetric answer for (A, B).

    Parameters
    ----------
    ab : PairScore
        The answer with A first.
    ba : PairScore
        The answer with B first.

    Returns
    -------
    PairScore
        ``p`` from :func:`p_sym_value`; each stimulus's aux averaged over both calls.
    """
    aux_a = tuple((x + y) / 2.0 for x, y in zip(ab.aux_a, ba.aux_b, strict=True))
    aux_b = tuple((x + y) / 2.0 for x, y in zip(ab.aux_b, ba.aux_a, strict=True))
    return PairScore(p_sym_value(ab.p, ba.p), aux_a, aux_b)


def p_sym(scorer: Scorer, path_a: StrPath, path_b: StrPath) -> float:
    """``p_sym(A, B) = (p(A, B) + 1 - p(B, A)) / 2`` (PROTOCOL.md §4): the order-independent
    probability that A is preferred, the ``p`` of :func:`symmetric_compare`."""
    return symmetric_compare(scorer, path_a, path_b).p


# --------------------------------------------------------------------------- registry


def pair_json(scorer: Scorer, path_a: StrPath, path_b: StrPath) -> dict[str, Any]:
    """One pair, both orders: ``p`` = p_sym(A, B), ``p_ab``, ``p_ba``, the averaged aux of A and B.

    Parameters
    ----------
    scorer : Scorer
        Compares the two files (called once in each order).
    path_a, path_b : str or Path
        The two stimuli.

    Returns
    -------
    dict
        ``a, b, scorer, version, calibrated, p, p_ab, p_ba, aux_a, aux_b`` (JSON-ready;
        ``calibrated`` is ``None`` when the scorer does not say).

    Raises
    ------
    ScorerError
        Whatever the scorer raises for an unreadable pair.
    """
    ab = scorer.compare(path_a, path_b)
    ba = scorer.compare(path_b, path_a)
    sym = combine_orders(ab, ba)
    return {
        "a": str(path_a), "b": str(path_b), "scorer": scorer.name, "version": scorer.version,
        "calibrated": getattr(scorer, "calibrated", None),
        "p": sym.p, "p_ab": ab.p, "p_ba": ba.p, "aux_a": list(sym.aux_a), "aux_b": list(sym.aux_b),
    }


def _load_target(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise UnknownScorerError(f"{target!r} is not of the form 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def available_scorers() -> dict[str, str]:
    """Every registered scorer, ``name -> "module:attribute"``.

    Entry points in :data:`ENTRY_POINT_GROUP` win over the built-in table, so a plugin
    may replace a built-in deliberately; the built-ins are always present even when the
    package metadata is stale (an editable install made before the entry points existed).

    Returns
    -------
    dict of str to str
        Sorted by name.
    """
    found = dict(BUILTIN_SCORERS)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return dict(sorted(found.items()))


def scorer_factory(name: str) -> Callable[..., Scorer]:
    """The class or factory registered under ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`available_scorers`.

    Returns
    -------
    callable
        Called with keyword options, returns a :class:`Scorer`.

    Raises
    ------
    UnknownScorerError
        When no scorer is registered under ``name``.
    """
    table = available_scorers()
    if name not in table:
        known = ", ".join(table) or "none"
        raise UnknownScorerError(f"no scorer named {name!r}; registered: {known}")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return _load_target(table[name])


def get_scorer(name: str, **options: Any) -> Scorer:
    """Instantiate the scorer registered under ``name`` with keyword ``options``.

    Parameters
    ----------
    name : str
        A name from :func:`available_scorers`.
    **options
        Passed to the scorer's factory.

    Returns
    -------
    Scorer

    Raises
    ------
    UnknownScorerError
        When no scorer is registered under ``name``.
    ScorerError
        When the object built does not implement the :class:`Scorer` protocol.

    Examples
    --------
    >>> s = get_scorer("handcrafted", frames=16)    # doctest: +SKIP
    >>> s.compare("a.mp4", "b.mp4").p                # doctest: +SKIP
    """
    scorer = scorer_factory(name)(**options)
    if not isinstance(scorer, Scorer):
        raise ScorerError(f"scorer {name!r} does not implement the Scorer protocol")
    return scorer


def scorer_from_config(config: str | Mapping[str, Any]) -> Scorer:
    """Build a scorer from a manifest/CLI entry: ``"handcrafted"`` or
    ``{"name": "command", "options": {"command": ["vqa", "{a}", "{b}"]}}``.

    Parameters
    ----------
    config : str or mapping
        A registered name, or a mapping with ``name`` and optional ``options``.

    Returns
    -------
    Scorer

    Raises
    ------
    UnknownScorerError
        When the mapping has no ``name`` or the name is not registered.
    ScorerError
        When the object built is not a :class:`Scorer`.
    """
    if isinstance(config, str):
        return get_scorer(config)
    if "name" not in config:
        raise UnknownScorerError(f"scorer config needs a 'name': {dict(config)!r}")
    options = config.get("options") or {}
    return get_scorer(str(config["name"]), **dict(options))


def pair_key(cond_a: str, cond_b: str) -> tuple[str, str]:
    """Canonical unordered key of a condition pair (used by cross-fitting and caches).

    Parameters
    ----------
    cond_a, cond_b : str
        The two condition names, in any order.

    Returns
    -------
    tuple of (str, str)
        The names, smaller first.
    """
    return (cond_a, cond_b) if cond_a <= cond_b else (cond_b, cond_a)


def describe(scorer: Scorer) -> str:
    """``"name version"`` — how reports and ``ranking.csv`` name a scorer.

    Parameters
    ----------
    scorer : Scorer

    Returns
    -------
    str
    """
    return f"{scorer.name} {scorer.version}"


__all__: Sequence[str] = (
    "BUILTIN_SCORERS",
    "ENTRY_POINT_GROUP",
    "NOISE_AUX_INDEX",
    "N_AUX",
    "PairScore",
    "Scorer",
    "ScorerError",
    "UnknownScorerError",
    "available_scorers",
    "check_aux",
    "check_probability",
    "combine_orders",
    "describe",
    "get_scorer",
    "p_sym",
    "p_sym_value",
    "pair_json",
    "pair_key",
    "scorer_factory",
    "scorer_from_config",
    "symmetric_compare",
)
