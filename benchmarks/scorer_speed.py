"""Speed and memory of the objective scorers (printed; never part of pass/fail).

1. frames/s of the ``handcrafted`` scorer on a 10 s 720p H.264 clip, next to decode-only
   throughput of the same clip in the same run (target: ≥ 50 % of decode-only);
2. peak memory while scoring a 1080p clip, measured in a fresh subprocess with
   ``tracemalloc`` (Python + NumPy allocations) and the process's peak RSS (VmHWM, the
   per-image figure behind ``ru_maxrss``; the latter is also printed, but on Linux it
   inherits the forking parent's high-water mark) (target: < 300 MB);
3. frames/s of the ``siamese-checkpoint`` adapter at batch 16 when CUDA is present
   ("no CUDA" otherwise; ``--checkpoint-on-cpu`` measures it on the CPU anyway).

Usage::

    python benchmarks/scorer_speed.py [--seconds 10] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from analysis.objective.scorers.features import video_features
from analysis.video import count_frames

_MEMORY_PROBE = r"""
import json, resource, sys, tracemalloc


def peak_rss_kib():
    # VmHWM is the peak RSS of *this* process image. ru_maxrss is not usable on its own
    # here: Linux carries the forking parent's high-water mark across fork + exec.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


from analysis.objective.scorers.features import video_features

base = peak_rss_kib()
tracemalloc.start()
video_features(sys.argv[1], frames=int(sys.argv[2]))
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({
    "tracemalloc_peak": peak,
    "peak_rss_kib": peak_rss_kib(),
    "peak_rss_after_import_kib": base,
    "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
"""


def make_clip(path: Path, width: int, height: int, seconds: float, fps: float) -> Path:
    """A synthetic H.264 clip (study_app.demo when present, else a moving test pattern)."""
    if path.exists():
        return path
    try:
        from study_app.demo.clipset import make_clip as clips_make_clip
    except ImportError:
        clips_make_clip = None
    if clips_make_clip is not None:
        clips_make_clip(path, "c1", None, width, height, seconds, fps, preset="veryfast")
        return path
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(int(seconds * fps)):
            img = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, ((xx ^ yy) + i) % 256], axis=-1).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def decode_only(path: Path) -> float:
    """Seconds to decode every frame (same threading as the scorer)."""
    t0 = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - t0


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall-clock runs (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def checkpoint_speed(path: Path, workdir: Path, on_cpu: bool) -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if not torch.cuda.is_available() and not on_cpu:
        return "no CUDA"
    from analysis.objective import CheckpointScorer

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
            self.aux = torch.nn.Linear(8, 11)
            self.score = torch.nn.Linear(8, 1)

        def forward(self, x1: torch.Tensor, x2: torch.Tensor):
            e1 = torch.relu(self.conv(x1)).mean(dim=(2, 3))
            e2 = torch.relu(self.conv(x2)).mean(dim=(2, 3))
            p = torch.sigmoid(self.score(e1) - self.score(e2)).squeeze(1)
            return p, torch.sigmoid(self.aux(e1)), torch.sigmoid(self.aux(e2))

    model_path = workdir / "tiny_bench.pt"
    torch.jit.script(Tiny()).save(str(model_path))
    k = 64
    scorer = CheckpointScorer(model_path, frames=k, batch_size=16, device=None if not on_cpu else "cpu")
    scorer.compare(path, path)  # warm-up: model load, CUDA context
    seconds = timed(lambda: scorer.compare(path, path), 1)
    return f"{2 * k / seconds:.0f} frames/s at batch 16 on {scorer.resolved_device} (tiny model; {k} frame pairs)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="720p clip length")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--frames", type=int, default=32, help="K sampled frames (scorer default 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="directory to keep/reuse the generated clips")
    parser.add_argument("--checkpoint-on-cpu", action="store_true")
    args = parser.parse_args(argv)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="panelrank-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"clips in {workdir}")
    c720 = make_clip(workdir / "bench_720p.mp4", 1280, 720, args.seconds, args.fps)
    c1080 = make_clip(workdir / "bench_1080p.mp4", 1920, 1080, min(args.seconds, 5.0), args.fps)
    n = count_frames(c720)

    # Decode-only and scorer runs alternate, so both see the same machine load; the
    # ratio is the median over these paired runs, the rates the best run of each.
    print(f"\n720p H.264, {n} frames ({args.seconds:g} s), {args.repeats} paired runs, load {os.getloadavg()[0]:.1f}")
    variants = [
        (f"handcrafted, K={args.frames}", {"frames": args.frames}),
        (f"handcrafted, K={2 * args.frames}", {"frames": 2 * args.frames}),
        (f"handcrafted, K={args.frames}, no overlap", {"frames": args.frames, "overlap": False}),
    ]
    best_dec = float("inf")
    rows = []
    for label, options in variants:
        ratios, best = [], float("inf")
        for _ in range(args.repeats):
            dec = timed(lambda: decode_only(c720), 1)
            t = timed(lambda options=options: video_features(c720, **options), 1)
            best_dec, best = min(best_dec, dec), min(best, t)
            ratios.append(dec / t)
        rows.append((label, n / best, statistics.median(ratios)))
    print(f"  {'decode only':34s} {n / best_dec:8.1f} frames/s")
    for label, rate, ratio in rows:
        print(f"  {label:34s} {rate:8.1f} frames/s   ({ratio:5.1%} of decode-only, median of pairs)")

    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(c1080), str(args.frames)],
        capture_output=True,
        text=True,
        check=True,
    )
    mem = json.loads(probe.stdout)
    print(f"\n1080p H.264, {count_frames(c1080)} frames, K={args.frames}")
    print(f"  tracemalloc peak (scoring)     {mem['tracemalloc_peak'] / 2**20:8.1f} MB")
    print(f"  peak RSS, whole process        {mem['peak_rss_kib'] / 1024:8.1f} MB   (target < 300 MB)")
    print(f"  peak RSS after imports only    {mem['peak_rss_after_import_kib'] / 1024:8.1f} MB")
    print(f"  ru_maxrss (incl. parent's)     {mem['ru_maxrss_kib'] / 1024:8.1f} MB")
    print(f"\nsiamese-checkpoint: {checkpoint_speed(c720, workdir, args.checkpoint_on_cpu)}")


if __name__ == "__main__":
    main()
