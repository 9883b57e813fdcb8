"""Package facades whose names load their modules when first used (PEP 562).

Used by `correlate`, `correlate.pairdb` and `enhance`, so that importing a
package for one name does not import every module (and torch or zarr).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_facade"]


def lazy_facade(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package that re-exports lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    homes : Mapping[str, str]
        Exported name -> the submodule (relative to ``package``) defining it.

    Returns
    -------
    tuple of callables
        Assign them to the package's ``__getattr__`` and ``__dir__``.

    """

    def get(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    def names() -> list[str]:
        return sorted(homes)

    return get, names
