"""When the comparisons determine finite, comparable scores: the graph checks and their errors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from analysis.bradley_terry.counts import PairCounts


class ComparisonGraphError(ValueError):
    """The comparisons cannot give finite, comparable scores. ``components`` lists the parts.

    Parameters
    ----------
    message : str
        The error message.
    components : list of list of str
        The groups of conditions the graph splits into (largest first), kept as the
        ``components`` attribute.
    """

    def __init__(self, message: str, components: list[list[str]]):
        self.components = components
        super().__init__(message)


class DisconnectedError(ComparisonGraphError):
    """The comparison graph falls apart: scores of different components are not comparable."""


class SeparationError(ComparisonGraphError):
    """Some group of conditions never loses (or never wins) against the rest: no finite MLE."""


def _components(n: int, rows: np.ndarray, cols: np.ndarray, strong: bool) -> tuple[int, np.ndarray]:
    g = sparse.coo_array((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    return csgraph.connected_components(g, directed=strong, connection="strong" if strong else "weak")


def _grouped(conditions: Sequence[str], labels: np.ndarray) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for name, lab in zip(conditions, labels, strict=True):
        groups.setdefault(int(lab), []).append(name)
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def _listed(groups: list[list[str]]) -> str:
    return " | ".join("[" + ", ".join(g) + "]" for g in groups)


def check_graph(pc: PairCounts, model: str) -> None:
    """Raise when the MLE is not unique and finite.

    The comparison graph must be connected (else :class:`DisconnectedError`), and the
    "did not lose to" graph (edge i→j when i beat or tied j) strongly connected (else a
    group never loses or never wins: :class:`SeparationError`).

    Parameters
    ----------
    pc : PairCounts
        The counts to be fitted.
    model : str
        The model actually fitted (``"bt"``, ``"davidson"`` or ``"rao-kupper"``; ties
        were already split for ``"split"``). With a tie model, a tie counts as "did not
        lose" for both sides, and at least one decided vote is needed.

    Raises
    ------
    ValueError
        With fewer than 2 conditions.
    DisconnectedError
        When the comparison graph is disconnected or a condition was never compared.
    SeparationError
        When some group never loses (or never wins) against the rest, or (tie models)
        every vote is a tie.
    """
    n = pc.n
    if n < 2:
        raise ValueError("need at least 2 conditions to fit")
    seen = np.zeros(n, dtype=bool)
    seen[pc.i] = seen[pc.j] = True
    k, labels = _components(n, pc.i, pc.j, strong=False)
    if k > 1 or not seen.all():
        comps = _grouped(pc.conditions, labels)
        raise DisconnectedError(
            f"the comparison graph is disconnected ({len(comps)} components: {_listed(comps)}); scores of "
            "different components are not comparable — add comparisons between them or fit each "
            "component separately",
            comps,
        )
    tie_both = pc.ties > 0 if model != "bt" else np.zeros(len(pc.i), dtype=bool)
    beat_ij = (pc.wins_i > 0) | tie_both
    beat_ji = (pc.wins_j > 0) | tie_both
    # Edge from loser to winner: strong connectivity ⇔ every group wins and loses somewhere.
    rows = np.concatenate([pc.j[beat_ij], pc.i[beat_ji]])
    cols = np.concatenate([pc.i[beat_ij], pc.j[beat_ji]])
    k, labels = _components(n, rows, cols, strong=True)
    if k > 1:
        comps = _grouped(pc.conditions, labels)
        # Splitting ties gives each side of a tie half a win: the same "did not lose" edges
        # a tie model already counts, so it is no way out here; only more votes are.
        raise SeparationError(
            "no finite maximum-likelihood scores: some group of conditions never loses (or never "
            f"wins) against the others (groups: {_listed(comps)}); collect more votes comparing these groups "
            "or fit only the conditions of one group",
            comps,
        )
    if model != "bt" and pc.wins_i.sum() + pc.wins_j.sum() == 0:
        raise SeparationError("only ties: the tie parameter has no finite estimate; ties='split' fits them as "
                              "equal scores", [list(pc.conditions)])
