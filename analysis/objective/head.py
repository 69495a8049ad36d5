"""The trainable Siamese head: turn per-stimulus features into calibrated preferences.

A head maps a stimulus's standardised features ``z`` to a utility ``g(z)`` and predicts
``p(A over B) = σ(g(z_A) - g(z_B))``; being a difference of one shared function, it is
order-independent by construction (``p(B, A) = 1 - p(A, B)``).

* ``kind="logistic"`` (default): ``g(z) = β·z`` — logistic regression on standardised
  feature differences with an L2 penalty, fitted by L-BFGS (numpy/scipy only).
* ``kind="mlp"`` (needs torch to *fit*): a small shared tower
  ``g(z) = w₂·tanh(W₁ z + b₁)``. The fitted weights are stored as plain numbers, so a
  saved MLP head is *used* without torch.

Votes enter as ``prefs``: positive means A preferred, negative B, ``0`` a tie (target
0.5); graded scales (pc5, ccr7) count by sign, optionally weighted with ``sample_weight``.

Cross-fitting over condition pairs lives in :mod:`analysis.objective.crossfit`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize

from .base import StrPath

HeadKind = Literal["logistic", "mlp"]

#: Version of the saved-head file format.
HEAD_FORMAT = 1

_EPS = 1e-12


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def feature_matrix(data: Any, names: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Coerce features (DataFrame, 2-D array, or sequence of mappings) to a float matrix.

    Parameters
    ----------
    data : DataFrame, array_like or sequence of mappings
        One row per vote side.
    names : sequence of str, optional
        Feature columns to take, in this order (default: all, as the data names them).

    Returns
    -------
    matrix : ndarray, shape (n, len(names))
    names : tuple of str

    Raises
    ------
    ValueError
        On missing columns, a non-2-D array, or a name count that does not match.
    """
    if isinstance(data, pd.DataFrame):
        cols = tuple(names) if names is not None else tuple(str(c) for c in data.columns)
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise ValueError(f"features are missing column(s) {missing}")
        return data.loc[:, list(cols)].to_numpy(dtype=float), cols
    if isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        cols = tuple(names) if names is not None else tuple(data[0].keys())
        return np.array([[float(row[c]) for c in cols] for row in data], dtype=float), cols
    arr = np.asarray(data, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D (n_votes, n_features), got shape {arr.shape}")
    cols = tuple(names) if names is not None else tuple(f"f{i}" for i in range(arr.shape[1]))
    if len(cols) != arr.shape[1]:
        raise ValueError(f"{len(cols)} feature names for {arr.shape[1]} columns")
    return arr, cols


def targets_from_prefs(prefs: Any) -> np.ndarray:
    """Vote targets: 1 where A was preferred, 0 where B was, 0.5 for "no preference".

    Parameters
    ----------
    prefs : array_like
        Signed preferences (positive = A preferred; the strength is ignored).

    Returns
    -------
    ndarray of float
        Same shape as ``prefs``.
    """
    pref = np.asarray(prefs, dtype=float)
    return np.where(pref > 0, 1.0, np.where(pref < 0, 0.0, 0.5))


def pairwise_metrics(p: np.ndarray, prefs: Any, sample_weight: Any = None) -> dict[str, float]:
    """Accuracy (on decided votes) and log-loss (all votes, ties as 0.5 targets).

    Accuracy counts a decided vote as right when ``p`` is on its side of 0.5 (half right
    at exactly 0.5); "no preference" votes are excluded from accuracy because no
    direction is right for them.

    Parameters
    ----------
    p : ndarray, shape (n,)
        Predicted p(A over B) per vote (clipped away from 0 and 1 for the log-loss).
    prefs : array_like, shape (n,)
        Signed preferences of the votes.
    sample_weight : array_like, optional
        Weight per vote (default: equal).

    Returns
    -------
    dict
        ``accuracy`` (NaN without decided votes), ``log_loss`` (nats per vote, NaN
        without votes) and ``n`` (votes).
    """
    y = targets_from_prefs(prefs)
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1.0 - _EPS)
    loss = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    decided = y != 0.5
    # A scorer sitting exactly on 0.5 has not picked a side: half right either way.
    right = np.where(p == 0.5, 0.5, ((p > 0.5) == (y > 0.5)).astype(float))
    acc = float(np.average(right[decided], weights=w[decided])) if decided.any() else float("nan")
    return {
        "accuracy": acc,
        "log_loss": float(np.average(loss, weights=w)) if y.size else float("nan"),
        "n": int(y.size),
    }


@dataclass(frozen=True)
class Head:
    """A fitted head (see the module docstring). Build with :func:`fit_head`.

    Attributes
    ----------
    kind
        ``"logistic"`` or ``"mlp"``.
    feature_names
        Order of the feature vector; :meth:`utility` looks these keys up.
    mean, scale
        Standardisation, ``z = (x - mean) / scale``, from the training stimuli.
    params
        ``{"coef": [...]}`` (logistic) or ``{"w1", "b1", "w2"}`` (mlp), plain lists.
    report
        How it was fitted: sizes, penalty, held-out accuracy and log-loss, time.
    """

    kind: HeadKind
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    params: Mapping[str, Any]
    report: Mapping[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Content hash of the model (not of the report): equal weights, equal version."""
        blob = json.dumps(
            [self.kind, list(self.feature_names), list(self.mean), list(self.scale), self.params],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def coef(self) -> np.ndarray:
        """Logistic weights on standardised features (logistic heads only)."""
        if self.kind != "logistic":
            raise AttributeError("only logistic heads have a coefficient vector")
        return np.asarray(self.params["coef"], dtype=float)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / scale`` for a (n, d) matrix in :attr:`feature_names` order.

        Parameters
        ----------
        x : ndarray, shape (n, d)

        Returns
        -------
        ndarray, shape (n, d)
        """
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)

    def _g(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "logistic":
            return z @ self.coef
        w1 = np.asarray(self.params["w1"], dtype=float)
        b1 = np.asarray(self.params["b1"], dtype=float)
        w2 = np.asarray(self.params["w2"], dtype=float)
        return np.tanh(z @ w1.T + b1) @ w2

    def utilities(self, features: Any) -> np.ndarray:
        """Utility ``g(z)`` of each row of ``features`` (DataFrame, array or mappings).

        Parameters
        ----------
        features : DataFrame, ndarray or sequence of mappings
            One row per stimulus; columns/keys looked up by :attr:`feature_names` (an array
            must already be in that order).

        Returns
        -------
        ndarray, shape (n,)
            Utility logits.

        Raises
        ------
        ValueError
            When a DataFrame lacks a feature column or an array has the wrong shape.
        """
        x, _ = feature_matrix(features, self.feature_names)
        return self._g(self.standardise(x))

    def utility(self, features: Mapping[str, float]) -> float:
        """Utility of one stimulus given its feature mapping.

        Parameters
        ----------
        features : mapping of str to float
            Must hold every name of :attr:`feature_names`.

        Returns
        -------
        float
            Utility logit.
        """
        x = np.array([[float(features[k]) for k in self.feature_names]])
        return float(self._g(self.standardise(x))[0])

    def predict(self, features_a: Any, features_b: Any) -> np.ndarray:
        """``p(A over B)`` per row.

        Parameters
        ----------
        features_a, features_b : DataFrame, ndarray or sequence of mappings
            Features of A and B, one row per pair (see :meth:`utilities`).

        Returns
        -------
        ndarray, shape (n,)
            ``σ(g(z_A) − g(z_B))``.
        """
        return _sigmoid(self.utilities(features_a) - self.utilities(features_b))

    def predict_one(self, features_a: Mapping[str, float], features_b: Mapping[str, float]) -> float:
        """``p(A over B)`` for one pair of feature mappings.

        Parameters
        ----------
        features_a, features_b : mapping of str to float

        Returns
        -------
        float
        """
        return float(_sigmoid(np.array(self.utility(features_a) - self.utility(features_b))))

    def evaluate(self, features_a: Any, features_b: Any, prefs: Any, sample_weight: Any = None) -> dict:
        """:func:`pairwise_metrics` of this head on some votes.

        Parameters
        ----------
        features_a, features_b : DataFrame, ndarray or sequence of mappings
            Features of A and B, one row per vote.
        prefs : array_like
            Signed preferences of the votes.
        sample_weight : array_like, optional
            Weight per vote.

        Returns
        -------
        dict
            ``accuracy, log_loss, n``.
        """
        return pairwise_metrics(self.predict(features_a, features_b), prefs, sample_weight)

    # -- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (what :meth:`save` writes).

        Returns
        -------
        dict
            ``format, kind, version, feature_names, mean, scale, params, report``.
        """
        return {
            "format": HEAD_FORMAT,
            "kind": self.kind,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "params": self.params,
            "report": dict(self.report),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Head:
        """Inverse of :meth:`to_dict`; checks the format and the stored version hash.

        Parameters
        ----------
        data : mapping
            As :meth:`to_dict` returns (``version`` may be absent).

        Returns
        -------
        Head

        Raises
        ------
        ValueError
            On an unsupported ``format`` or a ``version`` that does not match the weights.
        KeyError
            When a required key is missing.
        """
        if data.get("format") != HEAD_FORMAT:
            raise ValueError(f"unsupported head format {data.get('format')!r} (expected {HEAD_FORMAT})")
        head = cls(
            kind=data["kind"],
            feature_names=tuple(data["feature_names"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            params=data["params"],
            report=data.get("report", {}),
        )
        if data.get("version") not in (None, head.version):
            raise ValueError("head file was edited: its version hash does not match its weights")
        return head

    def save(self, path: StrPath) -> Path:
        """Write the head as JSON; the file name is the caller's, the version is inside.

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        Path
            ``path``.
        """
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: StrPath) -> Head:
        """Read a head written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        Head

        Raises
        ------
        OSError
            When the file cannot be read.
        ValueError
            When it is not valid JSON or fails the checks of :meth:`from_dict`.
        """
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- fitting


def _fit_logistic(d: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> dict[str, Any]:
    wsum = w.sum()

    def loss_grad(beta: np.ndarray) -> tuple[float, np.ndarray]:
        s = d @ beta
        loss = float(np.sum(w * (_softplus(s) - y * s)) / wsum + 0.5 * l2 * beta @ beta)
        grad = d.T @ (w * (_sigmoid(s) - y)) / wsum + l2 * beta
        return loss, grad

    res = optimize.minimize(loss_grad, np.zeros(d.shape[1]), jac=True, method="L-BFGS-B")
    return {"coef": [float(v) for v in res.x]}


def _fit_mlp(
    za: np.ndarray, zb: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, hidden: int, epochs: int, seed: int
) -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("kind='mlp' needs torch: pip install 'panelrank[vqa]'") from exc
    gen = torch.Generator().manual_seed(seed)
    d = za.shape[1]
    w1 = torch.nn.Parameter(torch.randn(hidden, d, generator=gen, dtype=torch.float64) / math.sqrt(d))
    b1 = torch.nn.Parameter(torch.zeros(hidden, dtype=torch.float64))
    w2 = torch.nn.Parameter(torch.randn(hidden, generator=gen, dtype=torch.float64) / math.sqrt(hidden))
    ta, tb = torch.from_numpy(za), torch.from_numpy(zb)
    ty, tw = torch.from_numpy(y), torch.from_numpy(w / w.sum())
    opt = torch.optim.Adam([w1, b1, w2], lr=0.03)

    def tower(z: torch.Tensor) -> torch.Tensor:  # the shared g of both inputs
        return torch.tanh(z @ w1.T + b1) @ w2

    # The tensors are tiny: intra-op threads only add synchronisation (and contend with
    # whatever else the machine runs), so train on one thread and restore the setting.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            opt.zero_grad()
            s = tower(ta) - tower(tb)
            loss = (tw * torch.nn.functional.binary_cross_entropy_with_logits(s, ty, reduction="none")).sum()
            loss = loss + 0.5 * l2 * (w1.square().sum() + w2.square().sum())
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "w1": w1.detach().numpy().tolist(),
        "b1": b1.detach().numpy().tolist(),
        "w2": w2.detach().numpy().tolist(),
    }


def _fit_once(
    xa: np.ndarray,
    xb: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    names: tuple[str, ...],
    *,
    kind: HeadKind,
    l2: float,
    hidden: int,
    epochs: int,
    seed: int,
) -> Head:
    stacked = np.vstack([xa, xb])
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    # A constant feature carries no information; scale 1 keeps it at zero influence
    # instead of dividing by zero.
    scale = np.where(scale > 1e-12, scale, 1.0)
    za, zb = (xa - mean) / scale, (xb - mean) / scale
    if kind == "logistic":
        params = _fit_logistic(za - zb, y, w, l2)
    elif kind == "mlp":
        params = _fit_mlp(za, zb, y, w, l2, hidden, epochs, seed)
    else:
        raise ValueError(f"unknown head kind {kind!r} (logistic or mlp)")
    return Head(kind, names, tuple(map(float, mean)), tuple(map(float, scale)), params)


def _holdout_mask(n: int, holdout: float, groups: Any, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if groups is None:
        test = np.zeros(n, dtype=bool)
        test[rng.permutation(n)[: max(1, round(holdout * n))]] = True
        return test
    g = np.asarray(groups, dtype=object)
    uniq = np.array(sorted(set(g.tolist()), key=str), dtype=object)
    if uniq.size < 2:
        raise ValueError("a grouped held-out split needs at least two groups")
    chosen = set(rng.permutation(uniq)[: max(1, round(holdout * uniq.size))].tolist())
    return np.array([v in chosen for v in g.tolist()])


def fit_head(
    features_a: Any,
    features_b: Any,
    prefs: Any,
    *,
    kind: HeadKind = "logistic",
    feature_names: Sequence[str] | None = None,
    sample_weight: Any = None,
    l2: float = 1e-3,
    holdout: float = 0.2,
    groups: Any = None,
    hidden: int = 16,
    epochs: int = 400,
    seed: int = 0,
) -> Head:
    """Fit a head on pairwise votes.

    Parameters
    ----------
    features_a, features_b
        Features of the A and B stimulus of each vote: DataFrames (columns = feature
        names), (n, d) arrays, or sequences of mappings.
    prefs
        One number per vote, positive = A preferred, 0 = no preference.
    kind
        ``"logistic"`` (default, numpy/scipy) or ``"mlp"`` (needs torch).
    feature_names
        Columns to use (default: all columns of ``features_a``).
    sample_weight
        Optional per-vote weights (e.g. ``|pref|`` to count strong preferences more).
    l2
        Ridge penalty on the weights (per vote; the data term is a mean).
    holdout
        Fraction held out to measure accuracy and log-loss before the final fit on all
        votes; 0 skips it.
    groups
        Optional per-vote group labels (content, or condition pair); the held-out split
        then takes whole groups, which is the honest estimate for new contents.
    hidden, epochs
        MLP size and full-batch Adam steps.
    seed
        Seeds the split and the MLP initialisation.

    Returns
    -------
    Head
        Fitted on all votes; ``report`` holds train and held-out metrics.
    """
    xa, names = feature_matrix(features_a, feature_names)
    xb, _ = feature_matrix(features_b, names)
    y = targets_from_prefs(prefs)
    if not (xa.shape == xb.shape and xa.shape[0] == y.shape[0]):
        raise ValueError(f"shapes differ: features_a {xa.shape}, features_b {xb.shape}, prefs {y.shape}")
    if y.size == 0:
        raise ValueError("no votes to fit on")
    if not (np.isfinite(xa).all() and np.isfinite(xb).all()):
        raise ValueError("features contain NaN or infinite values")
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    opts = {"kind": kind, "l2": l2, "hidden": hidden, "epochs": epochs, "seed": seed}

    report: dict[str, Any] = {
        "kind": kind,
        "n_votes": int(y.size),
        "n_features": len(names),
        "l2": l2,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if kind == "mlp":
        report.update(hidden=hidden, epochs=epochs)
    if holdout > 0 and y.size >= 10:
        test = _holdout_mask(y.size, holdout, groups, seed)
        if test.any() and (~test).any():
            part = _fit_once(xa[~test], xb[~test], y[~test], w[~test], names, **opts)
            held = part.evaluate(xa[test], xb[test], prefs_from_targets(y[test]), w[test])
            report.update(
                heldout_accuracy=held["accuracy"],
                heldout_log_loss=held["log_loss"],
                n_heldout=held["n"],
                heldout_by="group" if groups is not None else "vote",
            )
    head = _fit_once(xa, xb, y, w, names, **opts)
    train = head.evaluate(xa, xb, prefs_from_targets(y), w)
    report.update(train_accuracy=train["accuracy"], train_log_loss=train["log_loss"])
    return Head(head.kind, head.feature_names, head.mean, head.scale, head.params, report)


def prefs_from_targets(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`targets_from_prefs` up to grading: 1 → +1, 0 → -1, 0.5 → 0.

    Parameters
    ----------
    y : ndarray
        Targets in {0, 0.5, 1}.

    Returns
    -------
    ndarray of float
        Signs, same shape.
    """
    return np.sign(np.asarray(y, dtype=float) - 0.5)


# --------------------------------------------------------------------------- cross-fit
