"""Package attributes imported on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, modules: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``name`` comes from submodule ``modules[name]``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : mapping of str to str
        Attribute name → relative submodule name (without the leading dot).
    namespace : dict
        The package's ``globals()``; each name is stored there on first use, so it is imported once.

    Returns
    -------
    callable
        To assign to the package's ``__getattr__``; raises :class:`AttributeError` for any
        other name.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__
