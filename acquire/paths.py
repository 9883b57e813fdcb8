"""Checks of the paths a user gives: output files and folders, adapter folders.

Each check raises `UserError` naming the option and how to fix it, before any
hardware is touched or any file is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquire.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "check_adapter_paths",
    "check_new_file",
    "check_output_file",
    "check_output_folder",
]


def check_new_file(
    out: Path,
    *,
    what: str = "output file",
    option: str = "--out",
    overwrite: bool | None = None,
) -> Path:
    """Check that a file may be written at ``out``; return it absolute.

    Parameters
    ----------
    out : Path
        Requested file.
    what : str
        What the file is, for the message (``"model file"``).
    option : str
        The option that named it, for the hint.
    overwrite : bool or None
        Whether an existing file may be replaced; ``None``: never, and the
        command has no ``--overwrite`` to offer.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    UserError
        A folder in the way, an existing file (unless ``overwrite``), or a
        missing parent folder.

    """
    path = out.expanduser().absolute()
    if path.is_dir():
        raise UserError(f"{option} {str(path)!r} is a folder", "Give a file name.")
    if path.exists() and not overwrite:
        replace = "" if overwrite is None else ", or pass --overwrite to replace it"
        raise UserError(
            f"{what} {str(path)!r} already exists",
            f"Choose another {option}{replace}.",
        )
    if not path.parent.is_dir():
        raise UserError(
            f"the folder {str(path.parent)!r} of {option} does not exist",
            f"Create it first or choose another {option}.",
        )
    return path


def check_output_file(out: Path, *, overwrite: bool) -> Path:
    """Check an output path for an OME-TIFF; return it absolute.

    Parameters
    ----------
    out : Path
        Requested output file.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    UserError
        Wrong extension, or see `check_new_file`.

    """
    name = out.expanduser().name
    if not name.lower().endswith((".ome.tif", ".ome.tiff")):
        raise UserError(
            f"output file {str(out)!r} must end in .ome.tif or .ome.tiff",
            f"Use e.g. --out {name.split('.')[0] or 'image'}.ome.tif.",
        )
    return check_new_file(out, overwrite=overwrite)


def check_output_folder(out: Path) -> Path:
    """Check that ``out`` is a new or empty folder; return it absolute.

    Parameters
    ----------
    out : Path
        Requested output folder.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    UserError
        ``out`` is a file, holds other data, or its parent does not exist.

    """
    path = out.expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"--out {str(path)!r} is a file", "Give a folder.")
        if any(path.iterdir()):
            raise UserError(
                f"output folder {str(path)!r} already holds data",
                "Choose a new or empty folder; pairscope does not mix runs.",
            )
    elif not path.parent.is_dir():
        raise UserError(
            f"parent folder {str(path.parent)!r} of --out does not exist",
            "Create it first or choose another --out.",
        )
    return path


def check_adapter_paths(paths: list[Path] | None) -> list[Path] | None:
    """Check that every ``--adapter-path`` is an existing folder.

    Parameters
    ----------
    paths : list of Path or None
        Folders given on the command line (None: use the defaults).

    Returns
    -------
    list of Path or None
        The same folders, absolute.

    Raises
    ------
    UserError
        A folder does not exist.

    """
    if not paths:
        return None
    for path in paths:
        if not path.expanduser().is_dir():
            raise UserError(
                f"adapter folder {str(path)!r} (--adapter-path or "
                "PAIRSCOPE_ADAPTER_PATH) does not exist",
                "Give the Micro-Manager installation folder that holds the "
                "mmgr_dal_* libraries.",
            )
    return [path.expanduser().absolute() for path in paths]
