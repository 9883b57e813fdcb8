"""``pairscope gui``: the window over one microscope.

A configuration that does not load is reported like every other command (one
message, exit code 2) before any window opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from acquire.cli.common import handle_errors

__all__ = ["gui"]


@handle_errors
def gui(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="Micro-Manager configuration file (.cfg), e.g. "
            "hardware_configs/demo_widefield.cfg.",
        ),
    ],
) -> None:
    """Open a window: live and enhanced views, stage map, relocation, pairing."""
    from acquire.gui.app import run_gui

    code = run_gui(config)
    if code:
        raise typer.Exit(code)
