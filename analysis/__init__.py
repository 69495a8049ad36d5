"""panelrank.analysis — numerics on tidy vote frames (no web framework, no database).

Import the modules you need, e.g. ``from analysis import frames, bradley_terry``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("panelrank")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
