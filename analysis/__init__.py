"""panelrank.analysis — numerics on tidy vote frames (no web framework, no database).

Import the modules you need, e.g. ``from analysis import frames, bradley_terry``.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # The installed version is looked up on first use: reading package metadata scans
    # site-packages, which every `import analysis` (and `panelrank --help`) would otherwise pay.
    if name != "__version__":
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("panelrank")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        version = "0.0.0+local"
    globals()["__version__"] = version
    return version
