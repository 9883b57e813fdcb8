"""How long the window's event loop stalls while its operations run.

``pairscope gui`` runs every operation in a worker thread; the window stays
live only if the worker never holds Python's GIL (or the GUI thread) for
long. A 10 ms timer in the GUI thread records when the event loop gets to
it; the longest gap between two ticks, minus the timer's own period, is the
stall. Measured on the demo wide-field scope (offscreen Qt), with the PSF
cache emptied first so the first snap pays for every table it needs:

- ``snap (cold)``: the first snap (PSF tables, specimen, emitter index);
- ``snap (warm)``: the next snaps (the median and worst of 5);
- ``find fiducials``: the search and measurement of the four marks;
- the microscope dock's controls, which act on the GUI thread: live mode
  for 2 s (start, 20 frames shown, stop), an objective change, a channel
  change, an exposure change; and the MDA builder's Run (2 positions x 3
  planes through pairscope's acquisition, on a worker).

Usage::

    python bench/gui_stall.py [--without-helper]

Prints a table and writes ``bench/results/gui_stall.json``
(``--without-helper``: ``gui_stall_without_helper.json``, every PSF computed
in the window's own process, as before the helper process). Run it on an
otherwise idle machine: a busy core delays the GUI thread too.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gui_stall.json"
TICK_MS = 10
TARGET_MS = 100.0
N_WARM = 5
SETTLE_S = 0.5


def _timed(app: Any, run: Any) -> dict[str, float]:
    """Call ``run()`` with a 10 ms timer on the GUI thread; the longest gap."""
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    began = time.perf_counter()
    run()
    ended = time.perf_counter()
    timer.stop()
    stamps = [began, *ticks, ended]
    gaps_ms = [1000.0 * (b - a) for a, b in itertools.pairwise(stamps)]
    return {
        "wall_s": round(ended - began, 3),
        "stall_ms": round(max(gaps_ms) - TICK_MS, 1),
        "ticks": len(ticks),
    }


def _spin(app: Any, until: Any) -> None:
    while not until():
        app.processEvents()
        time.sleep(0.002)


def measure(app: Any, win: Any, start: Any) -> dict[str, float]:
    """Run ``start()`` (which starts an operation) and time the loop's gaps."""

    def run() -> None:
        start()
        _spin(app, lambda: not win.busy())

    return _timed(app, run)


def measure_action(app: Any, action: Any, settle_s: float) -> dict[str, float]:
    """Run ``action()`` on the GUI thread, then keep the loop going ``settle_s``."""

    def run() -> None:
        action()
        deadline = time.perf_counter() + settle_s
        _spin(app, lambda: time.perf_counter() >= deadline)

    return _timed(app, run)


def dock_rows(app: Any, win: Any, folder: Path) -> dict[str, dict[str, Any]]:
    """Stalls of the microscope dock's controls and of an MDA run."""
    import useq
    from PySide6.QtWidgets import QComboBox

    panel = win.microscope
    core = win.core
    rows: dict[str, dict[str, Any]] = {}

    def live_for_two_seconds() -> None:
        panel.live.click()

    rows["live (2 s)"] = measure_action(app, live_for_two_seconds, 2.0)
    rows["live stop"] = measure_action(app, panel.live.click, SETTLE_S)
    (objectives,) = panel.objectives.findChildren(QComboBox)
    current = objectives.currentIndex()
    rows["objective change"] = measure_action(
        app,
        lambda: objectives.setCurrentIndex((current + 1) % objectives.count()),
        SETTLE_S,
    )
    objectives.setCurrentIndex(current)
    (channels,) = panel.channel.findChildren(QComboBox)
    rows["channel change"] = measure_action(
        app, lambda: channels.setCurrentIndex(channels.count() - 1), SETTLE_S
    )
    rows["exposure change"] = measure_action(
        app, lambda: panel.exposure.spinBox.setValue(25.0), SETTLE_S
    )
    x, y = core.getXYPosition()
    z = core.getPosition()
    panel.mda.setValue(
        useq.MDASequence(
            stage_positions=(
                useq.Position(x=x, y=y, z=z, name="a"),
                useq.Position(x=x + 40.0, y=y, z=z, name="b"),
            ),
            z_plan=useq.ZRangeAround(range=1.0, step=0.5),
            axis_order=("p", "c", "z"),
        )
    )
    win.controls.out.set_path(folder / "mda_dataset")
    rows["MDA run (2 x 3 planes)"] = {
        **measure(app, win, panel.mda.control_btns.run_btn.click),
        "outcome": win.message_text(),
    }
    return rows


def main() -> None:
    without_helper = "--without-helper" in sys.argv[1:]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["PAIRSCOPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="pairscope-stall-")
    sys.path.insert(0, str(ROOT / "tests"))
    from acquire_helpers import demo_scope
    from PySide6.QtWidgets import QApplication

    from acquire.gui.main_window import MainWindow

    if without_helper:
        from acquire.sim import psfmodels_calls

        psfmodels_calls._HELPER.failed = True  # noqa: SLF001 (the 'before' row)

    folder = Path(tempfile.mkdtemp(prefix="pairscope-stall-"))
    config = demo_scope(
        folder,
        "widefield",
        # a second channel preset for the dock's channel control
        extra="ConfigGroup,Channel,mCherry,FilterWheel,Label,mCherry\n",
        MountMaxTranslationUm=150,
    )
    app = QApplication.instance() or QApplication([])
    win = MainWindow(config)
    win.show()
    # the window's first layout and paint are not an operation's stall
    settle = time.perf_counter() + SETTLE_S
    while time.perf_counter() < settle:
        app.processEvents()
        time.sleep(0.01)
    rows: dict[str, dict[str, Any]] = {}
    rows["snap (cold)"] = measure(app, win, win.snap)
    warm = [measure(app, win, win.snap) for _ in range(N_WARM)]
    stalls = sorted(w["stall_ms"] for w in warm)
    rows["snap (warm)"] = {
        "wall_s": round(sorted(w["wall_s"] for w in warm)[N_WARM // 2], 3),
        "stall_ms": stalls[-1],
        "stall_median_ms": stalls[N_WARM // 2],
    }
    c = win.controls
    c.holder.set_path(ROOT / "hardware_configs" / "demo_holder.json")
    c.session.set_path(folder / "session.json")
    rows["find fiducials"] = measure(app, win, c.find_fiducials.click)
    rows.update(dock_rows(app, win, folder))
    win.shutdown()
    print(f"{'operation':24s} {'wall (s)':>9s} {'stall (ms)':>11s}")
    for name, row in rows.items():
        print(f"{name:24s} {row['wall_s']:9.2f} {row['stall_ms']:11.1f}")
    result = {
        "benchmark": "longest event-loop stall of pairscope gui per operation",
        "tick_ms": TICK_MS,
        "target_stall_ms": TARGET_MS,
        "operations": rows,
        "meets_target": all(r["stall_ms"] <= TARGET_MS for r in rows.values()),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0]
            if hasattr(os, "getloadavg")
            else None,
            "python": platform.python_version(),
        },
    }
    result["psf_helper_process"] = not without_helper
    name = "gui_stall_without_helper.json" if without_helper else RESULTS.name
    path = RESULTS.with_name(name)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
