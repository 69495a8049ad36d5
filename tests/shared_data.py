"""Where the project's shared folder is: the failing cases and the real study data the tests use.

CI clones the repository into a fresh folder with a copy of ``shared/`` beside it, so it is
looked for next to the checkout first; a development machine may keep it at ``/work/shared``.
"""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():
    SHARED = Path("/work/shared")
#: Smallest inputs of faults found by trying panelrank (``shared/cases/README.md``).
CASES = SHARED / "cases"
#: Real published study results.
DATA = SHARED / "data"
