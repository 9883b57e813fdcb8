"""The dataset manifest (``manifest.json``): identity and status.

The manifest is small and rewritten whole, atomically (temporary file, fsync,
`os.replace`), whenever the status changes. Its ``format`` and
``format_version`` keys mark a folder as a pairscope dataset; the caller's own
keys (sequence hash, config hash, ...) identify which acquisition it holds.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from acquire.storage.durable import write_json_atomic
from acquire.storage.errors import DatasetError
from acquire.storage.jsonsafe import json_safe

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "RESERVED_KEYS",
    "check_identity",
    "new_manifest",
    "read_manifest",
    "write_manifest",
]

FORMAT = "pairscope-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Keys the storage owns; a caller's manifest may not set them.
RESERVED_KEYS = frozenset({"format", "format_version", "status", "failures"})

_NEW_FOLDER_HINT = (
    "Give the folder of the dataset to resume, or an empty folder to start a new one."
)


def new_manifest(fields: Mapping[str, Any], *, dataset: Path) -> dict[str, Any]:
    """Build the manifest of a new dataset.

    Parameters
    ----------
    fields : Mapping[str, Any]
        The caller's keys (identity, description); plain JSON values.
    dataset : Path
        The dataset folder, for error messages.

    Returns
    -------
    dict[str, Any]
        ``{"format", "format_version", "status": "running", "failures": [],
        **fields}``.

    Raises
    ------
    DatasetError
        ``fields`` sets a reserved key or holds a value with no JSON form.

    """
    clash = sorted(RESERVED_KEYS.intersection(fields))
    if clash:
        raise DatasetError(
            f"the manifest for {dataset} sets reserved key(s) {', '.join(clash)}",
            "Leave format, format_version, status and failures to the storage; "
            "use update_manifest, record_failure or mark_complete to change status.",
        )
    safe = json_safe(dict(fields), where=f"the manifest of {dataset}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "status": "running",
        "failures": [],
        **safe,
    }


def read_manifest(dataset: Path) -> dict[str, Any]:
    """Read and check the manifest of an existing dataset.

    Parameters
    ----------
    dataset : Path
        The dataset folder.

    Returns
    -------
    dict[str, Any]
        The manifest.

    Raises
    ------
    DatasetError
        The folder is missing, is not a pairscope dataset, or was written by a
        newer pairscope.

    """
    if not dataset.is_dir():
        raise DatasetError(f"dataset folder {dataset} does not exist", _NEW_FOLDER_HINT)
    path = dataset / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{dataset} is not a pairscope dataset (it has no {MANIFEST_NAME})",
            _NEW_FOLDER_HINT,
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(
            f"cannot read {path}: {exc}",
            "Restore the file from a backup, or start a new dataset in an empty "
            "folder.",
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(
            f"{dataset} is not a pairscope dataset ({MANIFEST_NAME} has no "
            f"'format': {FORMAT!r})",
            _NEW_FOLDER_HINT,
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(
            f"dataset {dataset} has format_version {version!r}; this pairscope "
            f"reads up to {FORMAT_VERSION}",
            "Update pairscope to resume it.",
        )
    return manifest


def write_manifest(dataset: Path, manifest: Mapping[str, Any]) -> None:
    """Atomically rewrite the manifest of ``dataset``.

    Parameters
    ----------
    dataset : Path
        The dataset folder.
    manifest : Mapping[str, Any]
        Plain JSON values.

    Raises
    ------
    DatasetError
        The file cannot be written (disk full, permissions).

    """
    path = dataset / MANIFEST_NAME
    try:
        write_json_atomic(path, dict(manifest))
    except OSError as exc:
        raise DatasetError(
            f"cannot write {path}: {exc}",
            "Free disk space or fix the folder's permissions, then resume.",
        ) from exc


def check_identity(
    manifest: Mapping[str, Any], identity: Mapping[str, Any], *, dataset: Path
) -> None:
    """Refuse to resume a dataset whose identity differs from this run's.

    Parameters
    ----------
    manifest : Mapping[str, Any]
        The dataset's manifest.
    identity : Mapping[str, Any]
        Keys that must hold the same values in the manifest (e.g. the
        sequence hash and the config hash of this run).
    dataset : Path
        The dataset folder, for the message.

    Raises
    ------
    DatasetError
        A key is missing from the manifest or holds another value.

    """
    wanted = json_safe(dict(identity), where=f"the identity to resume {dataset}")
    for key, value in wanted.items():
        if key not in manifest:
            found = "has no such key"
        elif manifest[key] != value:
            found = f"has {manifest[key]!r}"
        else:
            continue
        raise DatasetError(
            f"the output folder {dataset} already holds a different dataset "
            f"({key}: this run has {value!r}, the manifest {found})",
            "Choose a new output folder, or run the original sequence and config "
            "to resume it.",
        )
