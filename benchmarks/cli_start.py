"""Start-up time of the ``panelrank`` command and of ``import analysis``.

Prints the median and the fastest wall time (and the median CPU time, user + system, which
other load on the machine disturbs less) over ``--runs`` fresh processes of:
``panelrank --help`` (must stay under 0.3 s: the group lists its commands without
importing them), ``panelrank analyze --help`` and ``panelrank create-study --help``
(one command module loaded), and ``python -c "import analysis"`` (an analyst's notebook).
Figures only; nothing is asserted.

    .venv/bin/python benchmarks/cli_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _panelrank() -> str:
    """The installed ``panelrank`` script next to this interpreter."""
    script = Path(sys.executable).with_name("panelrank")
    if not script.exists():
        sys.exit(f"{script} not found: install the project first (pip install -e .)")
    return str(script)


def run_times(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of ``runs`` fresh runs of ``args`` (output discarded)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Runs of each command.")
    runs = parser.parse_args().runs
    panelrank = _panelrank()
    cases = {
        "panelrank --help": [panelrank, "--help"],
        "panelrank analyze --help": [panelrank, "analyze", "--help"],
        "panelrank create-study --help": [panelrank, "create-study", "--help"],
        "python -c 'import analysis'": [sys.executable, "-c", "import analysis"],
        "python -c 'pass' (interpreter alone)": [sys.executable, "-c", "pass"],
    }
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'cpu s':>7}   ({runs} runs each; cpu: median)")
    for label, args in cases.items():
        walls, cpus = run_times(args, runs)
        print(f"{label:<40} {statistics.median(walls):>9.3f} {min(walls):>7.3f} {statistics.median(cpus):>7.3f}")


if __name__ == "__main__":
    main()
