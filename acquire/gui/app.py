"""Start the window: open the microscope, build the application, run it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from acquire.errors import UserError
from acquire.hardware.microscope import close_core, open_core

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymmcore_plus import CMMCorePlus

__all__ = ["check_display", "run_gui"]


def check_display() -> None:
    """Refuse to start Qt where it has no screen (Qt would abort the process).

    Raises
    ------
    UserError
        On Linux with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` set and no
        ``QT_QPA_PLATFORM`` chosen.

    """
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise UserError(
        "there is no display to open the window on (DISPLAY and WAYLAND_DISPLAY "
        "are unset)",
        "Run pairscope gui on the microscope's desktop, or over ssh -X.",
    )


def run_gui(
    config: Path,
    *,
    adapter_paths: Sequence[Path] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Open ``config`` and run the window until it is closed.

    Parameters
    ----------
    config : Path
        Micro-Manager configuration of this microscope.
    adapter_paths : sequence of Path, optional
        Folders with Micro-Manager adapter libraries (default: the
        installation's and mm-test-adapters').
    argv : sequence of str, optional
        Qt's command line (default: the program name only).

    Returns
    -------
    int
        The Qt event loop's exit code.

    Raises
    ------
    ConfigError
        The configuration does not load; raised before any window opens.
    UserError
        There is no display (see `check_display`).

    """
    core: CMMCorePlus | None = open_core(config, adapter_paths=adapter_paths)
    try:
        check_display()
        from PySide6.QtWidgets import QApplication

        from acquire.gui.main_window import MainWindow

        existing = QApplication.instance()
        app = existing or QApplication(list(argv or sys.argv[:1]))
        window = MainWindow(Path(config), core=core)
        core = None  # the window owns it now
        window.show()
        try:
            return int(app.exec())
        finally:
            window.shutdown()
    finally:
        if core is not None:
            close_core(core)
