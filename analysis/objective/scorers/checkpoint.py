"""``siamese-checkpoint``: run a local two-input VQA checkpoint (the challenge's kind of model).

The model is ``forward(x1, x2) -> (p, aux1, aux2)`` on batches of frames, as in the
challenge (seed §2.5, Eq. 1): ``p`` of shape ``(B,)`` or ``(B, 1)`` is the probability
that ``x1`` is preferred, ``aux1``/``aux2`` of shape ``(B, 11)`` the auxiliary scores.

Preprocessing follows the challenge's scoring script: frames in **BGR** order, float
``(x - 128) / 128``, **native resolution** (no resize), ``K`` evenly spaced frames per
stimulus (default 32), frame ``k`` of A paired with frame ``k`` of B, and the outputs
**averaged over frames**. Frames are fed in batches (default 16) as both files are
decoded in lock step, so memory holds two batches, not two clips.

Two ways to give the model, both from local files (nothing is downloaded):

* a TorchScript file (``torch.jit.save``), or
* a ``state_dict`` file plus ``architecture="package.module:Class"`` (and
  ``architecture_options`` for its constructor); loaded with ``weights_only=True``.

Runs on CUDA when ``torch.cuda.is_available()``, else on the CPU; ``device=`` overrides.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis import video

from ..base import N_AUX, PairScore, ScorerError, StrPath, check_aux, check_probability
from ..cache import file_sha256
from .base import PER_PROCESS, FileMemo, PairScorer, sampling_tag, video_errors

CHECKPOINT_ADAPTER_VERSION = "1.0"


def _new_lock() -> Any:
    import threading

    return threading.Lock()


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ScorerError("the siamese-checkpoint scorer needs torch: pip install 'panelrank[vqa]'") from exc
    return torch


def challenge_frames(path: StrPath, *, frames: int | None = 32, every: int | None = None) -> Iterator[np.ndarray]:
    """Sampled frames of a stimulus, preprocessed as the challenge does: BGR, ``(x-128)/128``.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    frames, every : int, optional
        Sampling (see :func:`analysis.video.iter_decoded`).

    Yields
    ------
    ndarray of float32, shape (3, height, width)
        One sampled frame at a time, values in about [-1, 1].

    Raises
    ------
    ScorerError
        If the file cannot be decoded.
    """
    with video_errors():
        for _index, frame, sampled in video.iter_decoded(path, frames=frames, every=every):
            if sampled:
                chw = np.ascontiguousarray(video.to_bgr(frame).transpose(2, 0, 1), dtype=np.float32)
                chw -= 128.0
                chw /= 128.0
                yield chw


def _batches(
    path_a: StrPath, path_b: StrPath, frames: int | None, every: int | None, size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    batch_a: list[np.ndarray] = []
    batch_b: list[np.ndarray] = []
    # zip stops at the shorter clip: frame k of A is always judged against frame k of B.
    for fa, fb in zip(
        challenge_frames(path_a, frames=frames, every=every),
        challenge_frames(path_b, frames=frames, every=every),
        strict=False,
    ):
        batch_a.append(fa)
        batch_b.append(fb)
        if len(batch_a) == size:
            yield np.stack(batch_a), np.stack(batch_b)
            batch_a, batch_b = [], []
    if batch_a:
        yield np.stack(batch_a), np.stack(batch_b)


@dataclass
class CheckpointScorer(PairScorer):
    """Adapter for a local Siamese VQA checkpoint (see the module docstring).

    Parameters
    ----------
    checkpoint
        Path of the TorchScript file, or of the ``state_dict`` when ``architecture`` is set.
    architecture
        ``"module:Class"`` of an importable ``torch.nn.Module`` for a state-dict checkpoint.
    architecture_options
        Keyword arguments for that class.
    frames, every
        Frame sampling, as for the handcrafted scorer (default 32 evenly spaced).
    batch_size
        Frame pairs per forward call.
    device
        ``"cuda"``, ``"cpu"``…; default CUDA when available.
    logits
        Set when the model returns logits rather than probabilities (a sigmoid is applied).
    """

    checkpoint: StrPath
    architecture: str | None = None
    architecture_options: Mapping[str, Any] | None = None
    frames: int = 32
    every: int | None = None
    batch_size: int = 16
    device: str | None = None
    logits: bool = False
    name: str = field(default="siamese-checkpoint", init=False)
    _sha: str | None = field(default=None, init=False, repr=False, compare=False)
    _model: Any = field(default=None, init=False, repr=False, compare=False, metadata=PER_PROCESS)
    _aux_memo: FileMemo | None = field(
        default_factory=FileMemo, init=False, repr=False, compare=False, metadata=PER_PROCESS
    )
    _lock: Any = field(default_factory=_new_lock, init=False, repr=False, compare=False, metadata=PER_PROCESS)

    def __post_init__(self) -> None:
        _torch()  # fail at configuration time, not on the first stimulus
        if not os.path.isfile(self.checkpoint):
            raise ScorerError(f"checkpoint file not found: {self.checkpoint}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    @property
    def version(self) -> str:
        """Adapter version, checkpoint content hash and sampling (it keys the cache)."""
        if self._sha is None:
            self._sha = file_sha256(self.checkpoint)[:12]
        return f"{CHECKPOINT_ADAPTER_VERSION}+ckpt.{self._sha}+{sampling_tag(self.frames, self.every)}"

    @property
    def resolved_device(self) -> str:
        """The device the model runs on."""
        if self.device:
            return self.device
        return "cuda" if _torch().cuda.is_available() else "cpu"

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            torch = _torch()
            device = self.resolved_device
            try:
                if self.architecture is None:
                    with warnings.catch_warnings():
                        # TorchScript is the format challenge checkpoints ship in; newer torch
                        # flags it as deprecated, which is not the user's concern here.
                        warnings.filterwarnings("ignore", category=DeprecationWarning)
                        model = torch.jit.load(os.fspath(self.checkpoint), map_location=device)
                else:
                    module_name, _, cls_name = self.architecture.partition(":")
                    cls = getattr(importlib.import_module(module_name), cls_name)
                    model = cls(**dict(self.architecture_options or {}))
                    state = torch.load(os.fspath(self.checkpoint), map_location=device, weights_only=True)
                    model.load_state_dict(state)
                    model.to(device)
            except (RuntimeError, ValueError, OSError, ImportError, AttributeError) as exc:
                raise ScorerError(f"cannot load checkpoint {self.checkpoint}: {exc}") from exc
            model.eval()
            self._model = model
            return model

    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """See :meth:`Scorer.compare`: run the model on frame pairs of A and B and average over frames.

        Frame k of A is paired with frame k of B (the shorter clip sets the count); ``p`` (after
        a sigmoid when ``logits``), ``aux1`` and ``aux2`` are frame means. ``aux`` of one
        stimulus is the model's ``aux1`` with it in both slots (memoised per file), and those
        aux scores serve as its features. Raises :class:`ScorerError` when torch is missing,
        the checkpoint cannot be loaded, the forward pass fails or returns wrong shapes or
        values, or no frame is decoded.
        """
        torch = _torch()
        model = self._load()
        device = self.resolved_device
        where = f"checkpoint {self.checkpoint} on pair ({path_a}, {path_b})"
        p_sum = 0.0
        aux_a_sum = np.zeros(N_AUX)
        aux_b_sum = np.zeros(N_AUX)
        n = 0
        with torch.inference_mode():
            for xa, xb in _batches(path_a, path_b, self.frames, self.every, self.batch_size):
                ta = torch.from_numpy(xa).to(device)
                tb = torch.from_numpy(xb).to(device)
                try:
                    out = model(ta, tb)
                    p, aux1, aux2 = out
                except (RuntimeError, ValueError, TypeError) as exc:
                    raise ScorerError(f"{where}: forward failed: {exc}") from exc
                p = p.float().reshape(-1)
                if self.logits:
                    p = torch.sigmoid(p)
                aux1 = aux1.float().reshape(len(xa), -1)
                aux2 = aux2.float().reshape(len(xa), -1)
                if p.shape[0] != len(xa) or aux1.shape[1] != N_AUX or aux2.shape[1] != N_AUX:
                    raise ScorerError(
                        f"{where}: expected p of shape ({len(xa)},) and aux of shape ({len(xa)}, {N_AUX}), "
                        f"got {tuple(p.shape)}, {tuple(aux1.shape)}, {tuple(aux2.shape)}"
                    )
                p_sum += float(p.sum())
                aux_a_sum += aux1.sum(dim=0).cpu().numpy()
                aux_b_sum += aux2.sum(dim=0).cpu().numpy()
                n += len(xa)
        if n == 0:
            raise ScorerError(f"{where}: no frames decoded")
        return PairScore(
            check_probability(p_sum / n, what=f"{where}: p"),
            check_aux(aux_a_sum / n, what=f"{where}: aux1"),
            check_aux(aux_b_sum / n, what=f"{where}: aux2"),
        )
