"""Open pairscope's window on a real X server and take a screenshot of the screen.

Run by ``test_gui_microscope.py`` under ``xvfb-run`` (Qt's xcb platform, as on
a Linux desktop): ``python xvfb_window.py CONFIG OUT.png`` opens the window on
CONFIG, snaps a frame, shows it, grabs the whole X screen into OUT.png and
prints one JSON line with each panel's rectangle on the screen.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from acquire.gui.main_window import MainWindow


def main(config: Path, out: Path) -> None:
    app = QApplication([])
    win = MainWindow(config)
    win.show()
    win.raise_()
    win.snap()
    deadline = time.monotonic() + 120
    while win.busy() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(50):  # let the window manager-less X server map and paint
        app.processEvents()
        time.sleep(0.01)
    screen = app.primaryScreen()
    assert screen is not None
    screen.grabWindow(0).save(str(out))
    panels = {
        "microscope dock": win.microscope,
        "camera view": win.views.camera,
        "histogram": win.views.camera_contrast,
        "stage map": win.stage_map,
        "operations": win.controls,
        "log": win.log,
    }
    rects = {}
    for name, panel in panels.items():
        assert panel is not None
        corner = panel.mapToGlobal(panel.rect().topLeft())
        rects[name] = [corner.x(), corner.y(), panel.width(), panel.height()]
    print(
        json.dumps(
            {
                "platform": app.platformName(),
                "ratio": screen.devicePixelRatio(),
                "panels": rects,
                "message": win.message_text(),
            }
        )
    )
    win.shutdown()
    win.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
