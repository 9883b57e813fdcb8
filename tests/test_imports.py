"""What importing pairscope loads: the command line and the libraries stay light.

`pairscope --help` must answer at once on a microscope PC, and a notebook
importing `correlate` should not wait for torch. Heavy stacks load with the
command or module that uses them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "pymmcore_plus", "useq", "scipy", "zarr", "skimage", "PySide6")


def _loaded_after(statement: str) -> dict[str, bool]:
    probe = (
        f"import json, sys; {statement}; "
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded: dict[str, bool] = json.loads(proc.stdout)
    return loaded


def test_the_command_line_and_the_packages_import_no_heavy_stack() -> None:
    loaded = _loaded_after(
        "import acquire, acquire.cli.main, correlate, correlate.pairdb, enhance"
    )
    assert not any(loaded.values()), loaded


def test_the_database_facade_loads_its_modules_when_used() -> None:
    loaded = _loaded_after(
        "from correlate.pairdb import SPLITS, PairDatabaseError; "
        "assert SPLITS == ('train', 'val', 'test')"
    )
    assert not loaded["zarr"]
    loaded = _loaded_after("from correlate.pairdb import PairDatabase")
    assert loaded["zarr"]
