"""A small base class for scorers: the parts of the :class:`~analysis.objective.base.Scorer` protocol they share.

The protocol in :mod:`analysis.objective.base` stays the contract for third-party
scorers (any object with ``name``, ``version``, ``features``, ``aux`` and ``compare``).
The built-in scorers derive from one of two conveniences here instead of re-declaring
the same members:

* :class:`FeatureScorer` — per-stimulus results first (:meth:`~StimulusScorer.stimulus`:
  features and aux of one file), pairs from them (:meth:`~FeatureScorer.compare_features`);
  ``features``, ``aux`` and ``compare`` follow. The handcrafted and head scorers; the
  cached scorer shares the per-stimulus half (:class:`StimulusScorer`) and caches pairs
  of any scorer.
* :class:`PairScorer` — a pairwise model first (``compare``); the aux of one stimulus is
  its answer with the stimulus on both sides, and the aux scores serve as features.
  The checkpoint and command adapters.

A scorer built on another (the head, cross-fit and cached scorers) also mixes in
:class:`DerivedScorer`: the base's name, and its version plus a tag.

Both pickle without their per-process state (memos, loaded models, locks): a dataclass
field marked :data:`PER_PROCESS` is dropped on pickling and made anew in the worker.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from analysis.video import VideoError

from ..base import PairScore, Scorer, ScorerError, StrPath, describe

#: Metadata of a dataclass field holding per-process state (a memo, a loaded model, a lock):
#: :class:`BaseScorer` drops it on pickling and makes it anew, from its default factory,
#: in the worker. Use ``field(default_factory=..., init=False, repr=False, compare=False,
#: metadata=PER_PROCESS)``.
PER_PROCESS = MappingProxyType({"per_process": True})

#: Features of one stimulus, as :meth:`~analysis.objective.base.Scorer.features` gives them.
Features = Mapping[str, float]
#: The :data:`~analysis.objective.base.N_AUX` auxiliary scores of one stimulus.
Aux = tuple[float, ...]
#: Features and aux of one stimulus, as :meth:`StimulusScorer.stimulus` returns them.
StimulusResult = tuple[dict[str, float], Aux]


def file_key(path: StrPath) -> tuple[str, int, int]:
    """What identifies a file's content for a per-process memo: real path, size and mtime.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    tuple of (str, int, int)

    Raises
    ------
    ScorerError
        When the file cannot be stat'ed.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ScorerError(f"cannot read {path}: {exc}") from exc
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


class FileMemo:
    """Least-recently-used results per file (:func:`file_key`), so both orders of a pair decode once.

    Parameters
    ----------
    maxsize : int, optional
        Entries kept; unbounded when None.
    """

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, int, int], Any] = OrderedDict()

    def get(self, path: StrPath, compute: Callable[[], Any]) -> Any:
        """The memoised result for ``path``, else ``compute()`` (then remembered).

        Parameters
        ----------
        path : str or PathLike
        compute : callable
            Computes the result of ``path``.

        Returns
        -------
        object

        Raises
        ------
        ScorerError
            When the file cannot be stat'ed; whatever ``compute`` raises.
        """
        key = file_key(path)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = compute()
        while self.maxsize is not None and len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value


def sampling_tag(frames: int | None, every: int | None) -> str:
    """The frame-sampling part of a scorer version: ``k<frames>`` or ``n<every>``.

    Parameters
    ----------
    frames : int, optional
        Evenly spaced frames per stimulus.
    every : int, optional
        Every n-th frame instead (wins over ``frames``).

    Returns
    -------
    str
    """
    return f"k{frames}" if every is None else f"n{every}"


@contextmanager
def video_errors() -> Iterator[None]:
    """Report an unreadable video (:class:`analysis.video.VideoError`) as the scorer's :class:`ScorerError`."""
    try:
        yield
    except VideoError as exc:
        raise ScorerError(str(exc)) from exc


def aux_features(aux: tuple[float, ...]) -> dict[str, float]:
    """Aux scores as a feature dict ``aux_1..aux_11`` (for scorers that expose nothing else).

    Parameters
    ----------
    aux : tuple of float

    Returns
    -------
    dict of str to float
    """
    return {f"aux_{k + 1}": v for k, v in enumerate(aux)}


@dataclass
class BaseScorer:
    """What every built-in scorer shares: ``describe`` and pickling without per-process state.

    Subclasses are dataclasses that give ``name`` and ``version`` (fields or properties;
    the version keys the score cache).
    """

    def describe(self) -> str:
        """``"name version"``, as reports and ``ranking.csv`` name the scorer."""
        return describe(self)  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes get the configuration; memos, loaded models and locks stay behind
        # (they are per process, and a CUDA model or a lock does not pickle).
        skip = {f.name for f in dataclasses.fields(self) if f.metadata.get("per_process")}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)
        for f in dataclasses.fields(self):
            if f.metadata.get("per_process"):
                fresh = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                setattr(self, f.name, fresh)


class DerivedScorer:
    """Mixin of a scorer built on another, :attr:`base`: it keeps the base's name and extends its version.

    The version is the base's plus :attr:`version_tag` (empty by default), so a cached
    result of the base scorer is never taken for the derived one's.
    """

    base: Scorer

    @property
    def name(self) -> str:
        """The base scorer's name."""
        return self.base.name

    @property
    def version(self) -> str:
        """``<base version><version_tag>``."""
        return self.base.version + self.version_tag

    @property
    def version_tag(self) -> str:
        """What the derived scorer adds to the base's version (e.g. ``+head.<hash>``)."""
        return ""


@dataclass
class StimulusScorer(BaseScorer, ABC):
    """A scorer that computes features and aux of a stimulus together; subclasses implement :meth:`stimulus`."""

    @abstractmethod
    def stimulus(self, path: StrPath) -> StimulusResult:
        """Features and aux of one stimulus, as :meth:`Scorer.features` and :meth:`Scorer.aux` give them.

        The result may be shared: callers copy before changing it. Raises :class:`ScorerError`
        when the file cannot be read or decoded.
        """

    def features(self, path: StrPath) -> dict[str, float]:
        """See :meth:`Scorer.features`; a copy of the features of :meth:`stimulus`."""
        return dict(self.stimulus(path)[0])

    def aux(self, path: StrPath) -> tuple[float, ...]:
        """See :meth:`Scorer.aux`; the aux of :meth:`stimulus`."""
        return self.stimulus(path)[1]

    def _compare_stimuli(self, model: Any, path_a: StrPath, path_b: StrPath) -> PairScore:
        """``model.compare_features`` on the :meth:`stimulus` results of A and B."""
        fa, aa = self.stimulus(path_a)
        fb, ab = self.stimulus(path_b)
        return model.compare_features(fa, fb, aa, ab)


@dataclass
class FeatureScorer(StimulusScorer):
    """A scorer whose pairwise answer comes from per-stimulus features and aux.

    Subclasses implement :meth:`stimulus` and :meth:`compare_features`.
    """

    @abstractmethod
    def compare_features(self, features_a: Features, features_b: Features, aux_a: Aux, aux_b: Aux) -> PairScore:
        """Pairwise answer from the precomputed per-stimulus results of A and B (no decoding).

        The optional member of the :class:`Scorer` protocol (see :mod:`analysis.objective.base`);
        the aux are passed through.
        """

    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """See :meth:`Scorer.compare`; :meth:`compare_features` of the two :meth:`stimulus` results."""
        return self._compare_stimuli(self, path_a, path_b)


@dataclass
class PairScorer(BaseScorer, ABC):
    """A scorer that only answers pairs; subclasses implement :meth:`compare`.

    ``aux`` runs the pair (stimulus, stimulus); set ``_aux_memo`` to a :data:`PER_PROCESS` field of :class:`FileMemo`
    to remember it per file.
    """

    _aux_memo: FileMemo | None = field(default=None, init=False, repr=False, compare=False, metadata=PER_PROCESS)

    @abstractmethod
    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """See :meth:`Scorer.compare`."""

    def aux(self, path: StrPath) -> tuple[float, ...]:
        """See :meth:`Scorer.aux`: the pairwise answer with the stimulus on both sides (memoised when set)."""
        if self._aux_memo is None:
            return self.compare(path, path).aux_a
        return self._aux_memo.get(path, lambda: self.compare(path, path).aux_a)

    def features(self, path: StrPath) -> dict[str, float]:
        """See :meth:`Scorer.features`: a pairwise model exposes no embedding, so ``aux_1..aux_11``."""
        return aux_features(self.aux(path))


__all__ = [
    "PER_PROCESS",
    "Aux",
    "BaseScorer",
    "DerivedScorer",
    "FeatureScorer",
    "Features",
    "FileMemo",
    "PairScorer",
    "StimulusResult",
    "StimulusScorer",
    "aux_features",
    "file_key",
    "sampling_tag",
    "video_errors",
]
