"""``pairscope clean``: remove what interrupted runs left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from acquire.cli.common import console, flag, handle_errors

__all__ = ["clean_command"]


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB"


@handle_errors
def clean_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A dataset, a pair database, a demo output, or a folder of them."
        ),
    ],
    orphans: Annotated[
        bool,
        flag(
            "--orphans",
            help="Also remove the stacks a crash left without a journal line "
            "(.staging/orphans).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        flag("--dry-run", help="List what would be removed; remove nothing."),
    ] = False,
) -> None:
    """Remove partial stacks, temp files and stopped demos' work folders.

    Nothing that a running process holds is touched, and no committed stack
    or pair is ever removed.
    """
    from acquire.workflows.cleanup import clean

    report = clean(folder, orphans=orphans, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in report.leftovers:
        console.print(
            f"{verb} {item.path} ({item.what}, {_megabytes(item.size_bytes)})",
            markup=False,
            soft_wrap=True,
        )
    for note in report.kept:
        console.print(f"kept {note}", markup=False, soft_wrap=True)
    console.print(
        f"{len(report.leftovers)} leftovers {verb}, {_megabytes(report.size_bytes)}"
        if report.leftovers
        else "nothing to clean",
        markup=False,
    )
