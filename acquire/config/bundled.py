"""Find the Micro-Manager configurations that ship with pairscope.

The top-level ``hardware_configs`` folder is installed as package data, so
the demo configurations are found through `importlib.resources` wherever
pairscope is installed, not relative to a source checkout.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

from acquire.errors import UserError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["CONFIG_PACKAGE", "bundled_config", "resolve_config_path"]

CONFIG_PACKAGE = "hardware_configs"
"""Import name of the folder holding the shipped ``.cfg`` files."""

_REINSTALL_HINT = (
    "Reinstall pairscope (its wheel ships hardware_configs/*.cfg); after "
    "changing the packaging of a source checkout, run `pip install -e .` again."
)


def bundled_config(filename: str) -> Traversable:
    """The shipped configuration file ``filename``.

    Parameters
    ----------
    filename : str
        File name inside ``hardware_configs/``, e.g. ``"demo_widefield.cfg"``.

    Returns
    -------
    importlib.resources.abc.Traversable
        The file; use `importlib.resources.as_file` for a file-system path.

    Raises
    ------
    UserError
        ``hardware_configs`` is not installed, or does not hold ``filename``.

    """
    try:
        folder = importlib.resources.files(CONFIG_PACKAGE)
    except ModuleNotFoundError:
        raise UserError(
            f"the shipped configurations ({CONFIG_PACKAGE}/) are not installed",
            _REINSTALL_HINT,
        ) from None
    resource = folder.joinpath(filename)
    if not resource.is_file():
        raise UserError(
            f"the shipped configuration {CONFIG_PACKAGE}/{filename} is missing",
            _REINSTALL_HINT,
        )
    return resource


def resolve_config_path(path: Path) -> Path:
    """``path``, or the shipped configuration it names when it is not a file.

    ``demo_widefield.cfg`` or ``hardware_configs/demo_widefield.cfg`` typed
    outside a source checkout names the configuration installed with
    pairscope; any other path is returned unchanged (and reported later if it
    does not exist).

    Parameters
    ----------
    path : Path
        What the user gave as ``--config``.

    Returns
    -------
    Path
        ``path`` itself, or the installed file's path.

    """
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == CONFIG_PACKAGE)):
        return path
    try:
        resource = importlib.resources.files(CONFIG_PACKAGE).joinpath(parts[-1])
    except ModuleNotFoundError:
        return path
    # a regular (not zipped) installation: the resource is a file on disk
    if isinstance(resource, Path) and resource.is_file():
        return resource
    return path
