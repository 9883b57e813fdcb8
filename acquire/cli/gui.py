"""``pairscope gui``: the window over one microscope.

A configuration that does not load is reported like every other command (one
message, exit code 2) before any window opens.
"""

from __future__ import annotations

import typer

from acquire.cli.common import AdapterOption, ConfigOption, handle_errors
from acquire.paths import check_adapter_paths

__all__ = ["gui"]


@handle_errors
def gui(config: ConfigOption, adapter_path: AdapterOption = None) -> None:
    """Open a window: live and enhanced views, stage map, relocation, pairing."""
    from acquire.gui.app import run_gui

    code = run_gui(config, adapter_paths=check_adapter_paths(adapter_path))
    if code:
        raise typer.Exit(code)
