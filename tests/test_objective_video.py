"""Objective scorers on real decoded video: preferences, sampling, cache, tie-break, checkpoint.

Clips come from ``study_app.demo`` (synthetic contents with known degradations), small
(320×180, 1 s) so the whole file runs in well under a minute.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from analysis.objective import (
    N_AUX,
    NOISE_AUX_INDEX,
    CachedScorer,
    HandcraftedScorer,
    PairScore,
    ScoreCache,
    ScorerError,
    make_tiebreaker,
    p_sym,
    score_pairs,
    score_stimuli,
    video_rmse,
)
from analysis.objective.scorers import handcrafted
from analysis.objective.scorers.features import FEATURES
from analysis.video import count_frames, iter_decoded, sample_indices
from study_app.demo.clipset import make_clip  # synthetic contents with known degradations (tests only)
from study_app.demo.encoder import write_clip
from study_app.demo.sources import source_frames

W, H, SECONDS, FPS = 320, 180, 1, 25
CONTENTS = ("c1", "c2", "c3")
KINDS = ("noise", "blur", "compression", "under_exposure", "flicker")
STRENGTHS = (0.3, 0.6, 1.0)


def _make(path: Path, content: str, kind: str | None, strength: float) -> Path:
    spec = None if kind is None else {"degradation": kind, "strength": strength}
    make_clip(path, content, spec, W, H, SECONDS, FPS, preset="ultrafast")
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/<content>/ref.mp4`` and ``<dir>/<content>/<kind>_<strength>.mp4``."""
    root = tmp_path_factory.mktemp("objective_clips")
    for content in CONTENTS:
        _make(root / content / "ref.mp4", content, None, 0.0)
        for kind in KINDS:
            for s in STRENGTHS:
                _make(root / content / f"{kind}_{s}.mp4", content, kind, s)
    return root


def _clip(root: Path, content: str, kind: str | None = None, s: float = 0.0) -> Path:
    return root / content / ("ref.mp4" if kind is None else f"{kind}_{s}.mp4")


@pytest.fixture(scope="module")
def scorer() -> HandcraftedScorer:
    return HandcraftedScorer(frames=16)


def test_handcrafted_prefers_less_degraded(clip_dir: Path, scorer: HandcraftedScorer) -> None:
    """≥ 90 % of (less, more degraded) pairs are ordered right, across kinds and strengths."""
    results: list[tuple[str, str, str, float]] = []
    for content in CONTENTS:
        for kind in KINDS:
            ladder = [_clip(clip_dir, content)] + [_clip(clip_dir, content, kind, s) for s in STRENGTHS]
            pairs = [(ladder[0], x) for x in ladder[1:]] + list(itertools.pairwise(ladder[1:]))
            for better, worse in pairs:
                results.append((kind, better.name, worse.name, p_sym(scorer, better, worse)))
    right = [r for r in results if r[3] > 0.5]
    wrong = [r for r in results if r[3] <= 0.5]
    assert len(right) / len(results) >= 0.9, f"wrong on {len(wrong)}/{len(results)}: {wrong}"
    for kind in KINDS:  # no single degradation may be mostly missed
        of_kind = [r for r in results if r[0] == kind]
        assert sum(r[3] > 0.5 for r in of_kind) / len(of_kind) >= 0.75, kind


def test_features_aux_and_noise_convention(clip_dir: Path, scorer: HandcraftedScorer) -> None:
    ref = _clip(clip_dir, "c1")
    noisy = _clip(clip_dir, "c1", "noise", 1.0)
    feats = scorer.features(ref)
    assert tuple(feats) == FEATURES and all(math.isfinite(v) for v in feats.values())
    aux_ref, aux_noisy = scorer.aux(ref), scorer.aux(noisy)
    assert len(aux_ref) == N_AUX and all(0.0 <= v <= 1.0 for v in aux_ref + aux_noisy)
    # a_4 is the noise score: higher means worse (the challenge's convention).
    assert aux_noisy[NOISE_AUX_INDEX] > aux_ref[NOISE_AUX_INDEX]
    assert aux_noisy[0] < aux_ref[0]  # a_1, the overall score, falls
    dark = scorer.aux(_clip(clip_dir, "c1", "under_exposure", 1.0))
    assert dark[1] < aux_ref[1]  # a_2 exposure
    assert not scorer.calibrated and scorer.version.endswith("+prior")


def test_compare_is_symmetric_and_consistent(clip_dir: Path, scorer: HandcraftedScorer) -> None:
    a, b = _clip(clip_dir, "c2"), _clip(clip_dir, "c2", "blur", 0.6)
    ab, ba = scorer.compare(a, b), scorer.compare(b, a)
    assert ab.p + ba.p == pytest.approx(1.0)
    assert ab.aux_a == ba.aux_b
    assert scorer.compare(a, a).p == pytest.approx(0.5)


def test_sampling_is_sequential_and_exact(clip_dir: Path) -> None:
    path = _clip(clip_dir, "c1")
    n = count_frames(path)
    assert n == SECONDS * FPS
    idx = sample_indices(n, 8)
    assert idx[0] == 0 and idx[-1] == n - 1 and len(idx) == 8
    assert list(sample_indices(5, 32)) == [0, 1, 2, 3, 4]
    seen = [(i, s) for i, _frame, s in iter_decoded(path, frames=8)]
    assert [i for i, _ in seen] == list(range(n))  # every frame decoded, in order
    assert [i for i, s in seen if s] == idx.tolist()
    every = [i for i, _f, s in iter_decoded(path, every=10) if s]
    assert every == list(range(0, n, 10))
    # Every-n-th and K-frame sampling give close features on a stationary clip.
    f_k = handcrafted.video_features(path, frames=8)
    f_n = handcrafted.video_features(path, every=3, overlap=False)
    assert f_k["luma_mean"] == pytest.approx(f_n["luma_mean"], abs=0.02)


def test_unreadable_file_is_a_scorer_error(tmp_path: Path, scorer: HandcraftedScorer) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ScorerError, match=r"junk\.mp4"):
        scorer.features(junk)
    with pytest.raises(ScorerError, match=r"missing\.mp4"):
        scorer.features(tmp_path / "missing.mp4")


def test_cache_hit_on_rerun_and_only_changes_rescored(
    clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "stimuli"
    work.mkdir()
    names = ["ref", "noise_0.6", "blur_0.6"]
    for name in names:
        shutil.copy(clip_dir / "c3" / f"{name}.mp4", work / f"{name}.mp4")
    pairs = [(work / "ref.mp4", work / "noise_0.6.mp4"), (work / "ref.mp4", work / "blur_0.6.mp4")]

    with ScoreCache(tmp_path / "cache") as cache:
        first = score_pairs(HandcraftedScorer(frames=8), pairs, cache=cache)
        assert cache.count()["stimulus"] == 3 and cache.hits == 0

    calls: list[str] = []
    real = handcrafted.video_features

    def counting(path, **kw):
        calls.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(handcrafted, "video_features", counting)
    with ScoreCache(tmp_path / "cache") as cache:
        second = score_pairs(HandcraftedScorer(frames=8), pairs, cache=cache)
        assert calls == [] and cache.hits == 3  # nothing decoded on the rerun
        np.testing.assert_allclose(first["p"], second["p"])

        # Replace one stimulus: only it is scored again.
        shutil.copy(clip_dir / "c3" / "noise_1.0.mp4", work / "noise_0.6.mp4")
        os.utime(work / "noise_0.6.mp4", ns=(1, 1))
        third = score_pairs(HandcraftedScorer(frames=8), pairs, cache=cache)
        assert calls == ["noise_0.6.mp4"]
        assert third["p"][0] > first["p"][0]  # the worse file makes ref look better

        # A different scorer version is a different key.
        score_stimuli(HandcraftedScorer(frames=4), [work / "ref.mp4"], cache=cache)
        assert calls[-1] == "ref.mp4"

        # The wrapper gives the same answers from the same store.
        wrapped = CachedScorer(HandcraftedScorer(frames=8), cache)
        assert wrapped.compare(*pairs[1]).p == pytest.approx(second["p"][1])


def test_score_pairs_in_worker_processes_with_progress(clip_dir: Path) -> None:
    pairs = [(_clip(clip_dir, c), _clip(clip_dir, c, "noise", 0.3)) for c in CONTENTS[:2]]
    ticks: list[tuple[int, int]] = []
    par = score_pairs(HandcraftedScorer(frames=4), pairs, workers=2, progress=lambda d, t: ticks.append((d, t)))
    seq = score_pairs(HandcraftedScorer(frames=4), pairs, workers=1)
    np.testing.assert_allclose(par["p"], seq["p"])
    assert ticks[-1] == (4, 4) and par["error"].isna().all()
    assert list(par.columns[:5]) == ["path_a", "path_b", "p", "p_ab", "p_ba"]


def test_score_pairs_skip_records_errors(clip_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 64)
    good = (_clip(clip_dir, "c1"), _clip(clip_dir, "c1", "blur", 0.3))
    out = score_pairs(HandcraftedScorer(frames=4), [good, (good[0], junk)], errors="skip")
    assert out["error"].isna().tolist() == [True, False]
    assert "junk.mp4" in out["error"][1] and math.isnan(out["p"][1])
    with pytest.raises(ScorerError):
        score_pairs(HandcraftedScorer(frames=4), [(good[0], junk)])


def test_tiebreaker_orders_a_group_by_mean_p_sym(clip_dir: Path, tmp_path: Path) -> None:
    stimuli = {}
    for content in CONTENTS:
        stimuli[(content, "clean")] = _clip(clip_dir, content)
        stimuli[(content, "noisy")] = _clip(clip_dir, content, "noise", 0.6)
        stimuli[(content, "soft")] = _clip(clip_dir, content, "blur", 1.0)
    with ScoreCache(tmp_path / "cache") as cache:
        tb = make_tiebreaker(HandcraftedScorer(frames=8), stimuli, cache=cache)
        scores = tb(["noisy", "clean", "soft"])
        assert max(scores, key=scores.get) == "clean"
        assert sum(scores.values()) == pytest.approx(1.5)  # mean p_sym sums to n/2 in a group
        assert tb(["soft", "noisy", "clean"]) == scores  # order of listing is irrelevant
        assert tb.name == "handcrafted" and tb.version.startswith("1.")
        pairs = tb.pair_table()
        assert len(pairs) == 3 * len(CONTENTS) and pairs["p"].between(0, 1).all()
        assert tb(["clean"]) == {"clean": 0.5}
    by_s_obj = make_tiebreaker(None, s_obj={"clean": 2.0, "noisy": 3.0})
    assert by_s_obj(["clean", "noisy"]) == {"clean": 2.0, "noisy": 3.0}
    assert by_s_obj.name == "s_obj" and len(by_s_obj.version) == 12


def test_video_rmse_on_the_challenge_scale(clip_dir: Path, tmp_path: Path) -> None:
    ref = _clip(clip_dir, "c1")
    assert video_rmse(ref, ref) == 0.0
    noisy = video_rmse(_clip(clip_dir, "c1", "noise", 1.0), ref)
    slight = video_rmse(_clip(clip_dir, "c1", "noise", 0.3), ref)
    # Noise σ = 30 code values at strength 1 → RMSE ≈ 30/128 on (x-128)/128, less after coding.
    assert 0.05 < slight < noisy < 30 / 128 * 1.2
    short = tmp_path / "short.mp4"
    write_clip(short, source_frames("c1", W, H, 5, FPS), fps=FPS, preset="ultrafast")
    with pytest.raises(ScorerError, match="frame counts"):
        video_rmse(short, ref)


# --------------------------------------------------------------------------- checkpoint adapter


def _solid_clip(path: Path, rgb: tuple[int, int, int], n: int = 6) -> Path:
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:] = rgb
    write_clip(path, (frame for _ in range(n)), fps=FPS, crf=10, preset="ultrafast")
    return path


try:
    import torch
except ImportError:  # the adapter tests need torch; the rest of the file does not
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install 'panelrank[vqa]')")
# TorchScript is the checkpoint format the challenge tooling uses; torch ≥ 2.9 marks it deprecated.
no_jit_warning = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

if torch is not None:

    class TinySiamese(torch.nn.Module):
        """A small two-input model with the challenge's interface: (p, aux1, aux2)."""

        def __init__(self, width: int = 4) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, width, 3, stride=4)
            self.aux_head = torch.nn.Linear(width, N_AUX)
            self.score = torch.nn.Linear(width, 1)

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x)).mean(dim=(2, 3))

        def forward(self, x1: torch.Tensor, x2: torch.Tensor):
            e1, e2 = self.embed(x1), self.embed(x2)
            p = torch.sigmoid(self.score(e1) - self.score(e2)).squeeze(1)
            return p, torch.sigmoid(self.aux_head(e1)), torch.sigmoid(self.aux_head(e2))

    class ChannelProbe(torch.nn.Module):
        """p = mean of input channel 0 mapped to [0, 1]; aux_k = channel (k mod 3) likewise."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("idx", torch.tensor([k % 3 for k in range(N_AUX)]))

        def forward(self, x1: torch.Tensor, x2: torch.Tensor):
            m1 = (x1.mean(dim=(2, 3)) + 1) / 2  # (B, 3), back from (x-128)/128
            m2 = (x2.mean(dim=(2, 3)) + 1) / 2
            return m1[:, 0], m1[:, self.idx].clamp(0, 1), m2[:, self.idx].clamp(0, 1)


@needs_torch
@no_jit_warning
def test_checkpoint_adapter_runs_a_tiny_torchscript_model(clip_dir: Path, tmp_path: Path) -> None:
    from analysis.objective import CheckpointScorer

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    torch.jit.script(TinySiamese()).save(str(path))
    scorer = CheckpointScorer(path, frames=5, batch_size=2)
    assert scorer.resolved_device == ("cuda" if torch.cuda.is_available() else "cpu")
    a, b = _clip(clip_dir, "c1"), _clip(clip_dir, "c1", "blur", 1.0)
    ab, ba = scorer.compare(a, b), scorer.compare(b, a)
    assert isinstance(ab, PairScore)
    assert ab.p + ba.p == pytest.approx(1.0, abs=1e-5)  # this model is antisymmetric
    assert ab.aux_a == pytest.approx(ba.aux_b, abs=1e-6)
    assert scorer.compare(a, a).p == pytest.approx(0.5, abs=1e-6)
    assert len(scorer.aux(a)) == N_AUX and set(scorer.features(a)) == {f"aux_{k}" for k in range(1, 12)}
    assert "+ckpt." in scorer.version and scorer.version.endswith("+k5")


@needs_torch
@no_jit_warning
def test_checkpoint_preprocessing_is_bgr_scaled_and_frame_averaged(tmp_path: Path) -> None:
    from analysis.objective import CheckpointScorer

    path = tmp_path / "probe.pt"
    torch.jit.script(ChannelProbe()).save(str(path))
    clip = _solid_clip(tmp_path / "solid.mp4", (200, 40, 90))  # R, G, B
    score = CheckpointScorer(path, frames=4, batch_size=3).compare(clip, clip)
    # Channel 0 is blue: (90 - 128) / 128 → mapped back to 90 / 255.
    assert score.p == pytest.approx(90 / 255, abs=0.03)
    assert score.aux_a[1] == pytest.approx(40 / 255, abs=0.03)  # G
    assert score.aux_a[2] == pytest.approx(200 / 255, abs=0.03)  # R


@needs_torch
@no_jit_warning
def test_checkpoint_state_dict_with_architecture(clip_dir: Path, tmp_path: Path) -> None:
    from analysis.objective import CheckpointScorer

    torch.manual_seed(1)
    model = TinySiamese(width=3)
    sd = tmp_path / "tiny_state.pt"
    torch.save(model.state_dict(), sd)
    scripted = tmp_path / "tiny_script.pt"
    torch.jit.script(model).save(str(scripted))
    module = importlib.import_module(__name__).__name__
    by_state = CheckpointScorer(sd, architecture=f"{module}:TinySiamese", architecture_options={"width": 3}, frames=3)
    a, b = _clip(clip_dir, "c2"), _clip(clip_dir, "c2", "noise", 1.0)
    assert by_state.compare(a, b).p == pytest.approx(CheckpointScorer(scripted, frames=3).compare(a, b).p)
    with pytest.raises(ScorerError, match="cannot load checkpoint"):
        CheckpointScorer(sd, frames=3).compare(a, b)  # a state dict is not TorchScript
    with pytest.raises(ScorerError, match="not found"):
        CheckpointScorer(tmp_path / "nope.pt")


def test_fallback_decoding_handles_non_yuv_input(tmp_path: Path) -> None:
    """An RGB-coded stream goes through the converting path and gives the same kind of answer."""
    path = tmp_path / "rgb.mkv"
    frames = list(source_frames("c2", 96, 64, 4, FPS))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=FPS) if "libx264rgb" in av.codecs_available else None
        if stream is None:
            pytest.skip("libx264rgb not available in this FFmpeg build")
        stream.width, stream.height, stream.pix_fmt = 96, 64, "rgb24"
        for arr in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        out.mux(stream.encode(None))
    feats = handcrafted.video_features(path, frames=4)
    assert all(math.isfinite(v) for v in feats.values())
    assert 0.0 < feats["luma_mean"] < 1.0 and feats["colourfulness"] > 0


def test_fitted_head_makes_the_scorer_calibrated(clip_dir: Path, tmp_path: Path) -> None:
    """Votes → fit_head on the scorer's features → a saved head the scorer loads by path."""
    from analysis.objective import fit_head

    prior = HandcraftedScorer(frames=8)
    rows_a, rows_b, prefs = [], [], []
    for content in CONTENTS:
        ref = prior.features(_clip(clip_dir, content))
        for kind in KINDS:
            worse = prior.features(_clip(clip_dir, content, kind, 0.6))
            rows_a += [ref, worse]
            rows_b += [worse, ref]
            prefs += [1, -1]  # raters always prefer the clean clip
    head = fit_head(rows_a, rows_b, prefs, l2=1e-2, holdout=0)
    path = head.save(tmp_path / "head.json")
    calibrated = HandcraftedScorer(frames=8, head=path)
    assert calibrated.calibrated and calibrated.version.endswith(f"+head.{head.version}")
    a, b = _clip(clip_dir, "c1"), _clip(clip_dir, "c1", "flicker", 1.0)
    assert calibrated.compare(a, b).p > 0.5
    assert calibrated.compare(a, b).p + calibrated.compare(b, a).p == pytest.approx(1.0)
