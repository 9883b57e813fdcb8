"""``pairscope gui``: a PySide6 window over the acquisition library.

The microscope's own controls (pymmcore-widgets: live view, exposure,
objective, channel, shutter, presets, properties, MDA builder; icons shipped,
so nothing is fetched), live and enhanced z-stacks side by side with one z
slider, a stage map with the fiducial marks, the relocated targets and their
predicted errors, and the operations (snap, find fiducials, relocate, paired
acquisition, live enhancement) running on worker threads with a progress bar
and a log.

Importing this package sets ``PYMM_SIGNALS_BACKEND=psygnal``: with a Qt
application running, pymmcore-plus would otherwise give every new core
Qt signals (through qtpy, which pairscope does not use), while the library
relies on psygnal events fired from acquisition threads.
"""

import os

os.environ["PYMM_SIGNALS_BACKEND"] = "psygnal"

from acquire.gui.app import run_gui
from acquire.gui.main_window import MainWindow

__all__ = ["MainWindow", "run_gui"]
