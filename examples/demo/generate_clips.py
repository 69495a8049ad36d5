"""Generate the demo's synthetic clips: ``<out>/<content>/<condition>.mp4``.

4 contents (c1–c4) × 6 conditions (source, enhanced, noisy, blurred, dark,
compressed) with a known quality order (see ``study_app.demo.conditions.EXPECTED_ORDER``).
Clips that already exist and are valid are reused, so a rerun is cheap.

Examples
--------
Full demo size (1280×720, 5 s, 25 fps) into ``study_app/demo/clips`` (next to the demo manifest)::

    python examples/demo/generate_clips.py

Tiny clips for tests (320×180, 1 s)::

    python examples/demo/generate_clips.py --small --out /tmp/clips
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from study_app.demo import clipset, conditions
except ModuleNotFoundError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from study_app.demo import clipset, conditions

#: Next to the demo manifest, whose stimulus paths are ``clips/<content>/<condition>.mp4``.
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "study_app" / "demo" / "clips"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--width", type=int, default=None, help="frame width (default 1280; 320 with --small)")
    p.add_argument("--height", type=int, default=None, help="frame height (default 720; 180 with --small)")
    p.add_argument("--seconds", type=float, default=None, help="clip duration (default 5; 1 with --small)")
    p.add_argument("--fps", type=float, default=25, help="frame rate (default: %(default)s)")
    p.add_argument("--small", action="store_true", help="tiny test clips: 320×180, 1 s")
    p.add_argument("--contents", nargs="+", default=["c1", "c2", "c3", "c4"], help="content names")
    p.add_argument(
        "--conditions",
        nargs="+",
        default=list(conditions.DEMO_CONDITIONS),
        choices=list(conditions.DEMO_CONDITIONS),
        help="conditions to generate (default: all)",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel encoder processes (default: %(default)s)")
    p.add_argument(
        "--codec", choices=["libx264", "libvpx-vp9"], default="libx264", help="H.264 in .mp4 (default) or VP9 in .webm"
    )
    p.add_argument("--force", action="store_true", help="regenerate clips even if they are valid")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-clip progress")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate the clips; returns the process exit code."""
    args = parse_args(argv)
    width = args.width or (320 if args.small else 1280)
    height = args.height or (180 if args.small else 720)
    seconds = args.seconds or (1.0 if args.small else 5.0)
    t0 = time.perf_counter()
    paths = clipset.generate_demo(
        args.out,
        width=width,
        height=height,
        seconds=seconds,
        fps=args.fps,
        contents=tuple(args.contents),
        workers=args.workers,
        conditions={name: conditions.DEMO_CONDITIONS[name] for name in args.conditions},
        codec=args.codec,
        force=args.force,
        verbose=not args.quiet,
    )
    print(
        f"{len(paths)} clips ({width}x{height}, {seconds:g} s, {args.fps:g} fps) in {args.out} "
        f"[{time.perf_counter() - t0:.1f} s]"
    )
    print("expected quality order (best → worst): " + " > ".join(conditions.EXPECTED_ORDER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
