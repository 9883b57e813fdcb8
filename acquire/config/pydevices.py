"""Whether a ``#py pyDevice`` line names a loadable Python device class."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["python_device_problem"]


def python_device_problem(module_name: str, class_name: str) -> tuple[str, str] | None:
    """Why ``module.class`` cannot be loaded as a Python device.

    Parameters
    ----------
    module_name : str
        The module, as written on the configuration line.
    class_name : str
        The class in it.

    Returns
    -------
    tuple of str or None
        ``(what, hint)`` of the problem, or None when the class is a
        pymmcore-plus unicore ``Device``. Importing the module runs it.

    """
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        return (
            f"Python module {module_name!r} not found (no module {missing!r})",
            "Check the spelling, or install the package that provides it into "
            "the Python environment that runs pairscope.",
        )
    except Exception as exc:
        return (
            f"importing Python module {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}",
            "Fix the error in that module.",
        )
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            name
            for name, obj in inspect.getmembers(module, inspect.isclass)
            if _is_unicore_device(obj) and not inspect.isabstract(obj)
        )
        return (
            f"Python module {module_name!r} has no class {class_name!r}",
            f"Use one of its device classes: {', '.join(found) or 'none found'}.",
        )
    if not _is_unicore_device(cls):
        return (
            f"{module_name}.{class_name} is not a pymmcore-plus unicore Device",
            "Point the line at a subclass of "
            "pymmcore_plus.experimental.unicore.Device.",
        )
    return None


def _is_unicore_device(obj: Any) -> bool:
    """Whether ``obj`` is a subclass of pymmcore-plus' unicore ``Device``."""
    from pymmcore_plus.experimental.unicore import Device

    return isinstance(obj, type) and issubclass(obj, Device)
