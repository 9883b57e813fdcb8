"""Which package may import which: the layering the design card fixes.

Read from the source (every ``import`` and ``from ... import``, also those
inside functions), so a forbidden import fails here even when no test happens
to run the line that makes it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]

#: Modules outside ``acquire/sim`` that build a simulated scope, and so may
#: import the simulator.
SIMULATOR_BUILDERS = frozenset(
    {
        "acquire/workflows/demo.py",
        "acquire/workflows/demo_report.py",
        # attaches the simulated cameras, only for a config that declares them
        "acquire/hardware/microscope.py",
    }
)


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def _imports_of(path: Path, prefix: str) -> list[str]:
    return sorted(
        {
            name
            for name in _imported_modules(path)
            if name == prefix or name.startswith(prefix + ".")
        }
    )


@pytest.mark.parametrize("library", ["correlate", "enhance"])
def test_the_libraries_never_import_the_application(library: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): _imports_of(path, "acquire")
        for path in _sources(library)
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_simulated_scope_builders_import_the_simulator() -> None:
    sim = ROOT / "acquire" / "sim"
    offenders = {}
    for path in _sources("acquire"):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_relative_to(sim) or relative in SIMULATOR_BUILDERS:
            continue
        if found := _imports_of(path, "acquire.sim"):
            offenders[relative] = found
    assert not offenders


def test_the_gui_does_not_import_the_command_line() -> None:
    offenders = {
        str(path.relative_to(ROOT)): _imports_of(path, "acquire.cli")
        for path in _sources("acquire/gui")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_no_module_is_left_flat_beside_the_sub_packages() -> None:
    """A newcomer finds each module's home from the folder names."""
    shared = {"__init__.py", "_version.py", "errors.py", "paths.py"}
    flat = {p.name for p in (ROOT / "acquire").glob("*.py")} - shared
    assert not flat
    # what acquire and enhance both use lives flat in correlate
    library_shared = {
        "__init__.py",
        "errors.py",
        "json_values.py",
        "lazy_exports.py",
        "focus_metric.py",
    }
    flat = {p.name for p in (ROOT / "correlate").glob("*.py")} - library_shared
    assert not flat


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "def f():\n"
        "    from acquire.sim import camera\n"
        "    import importlib\n"
        "    return importlib.import_module('acquire.sim.psf')\n",
        encoding="utf-8",
    )
    assert _imports_of(module, "acquire.sim") == [
        "acquire.sim",
        "acquire.sim.camera",
        "acquire.sim.psf",
    ]
