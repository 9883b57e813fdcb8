"""Finding Micro-Manager adapter libraries and the devices they provide."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from pymmcore_plus import find_micromanager

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["AdapterIndex", "default_adapter_paths", "pymmcore_version"]


class AdapterIndex:
    """Which Micro-Manager adapter libraries a search path holds.

    Asks a bare ``pymmcore.CMMCore`` (the same lookup the loader does), so the
    platform's library naming (``mmgr_dal_X.dll``, ``libmmgr_dal_X.so.0``) is
    handled by Micro-Manager itself.

    Parameters
    ----------
    search_paths : sequence of Path
        Folders searched for adapter libraries, in order.

    """

    def __init__(self, search_paths: Sequence[Path]) -> None:
        import pymmcore

        self.search_paths = [Path(p) for p in search_paths]
        self._core = pymmcore.CMMCore()
        self._core.setDeviceAdapterSearchPaths([str(p) for p in self.search_paths])
        self._names = frozenset(self._core.getDeviceAdapterNames())
        self._devices: dict[str, tuple[dict[str, int], str | None]] = {}
        self._creatable: dict[tuple[str, str], bool] = {}

    @property
    def library_names(self) -> frozenset[str]:
        """Names of the adapter libraries found in the search path."""
        return self._names

    def has_library(self, library: str) -> bool:
        """Whether the adapter library is in the search path."""
        return library in self._names

    def devices(self, library: str) -> tuple[dict[str, int], str | None]:
        """Devices the library registers (name -> device type) or a load error.

        Parameters
        ----------
        library : str
            Adapter library name.

        Returns
        -------
        tuple
            ``(devices, error)``: ``error`` is the loader's message when the
            library exists but cannot be opened (missing vendor driver).

        """
        if library not in self._devices:
            try:
                names = self._core.getAvailableDevices(library)
                types = self._core.getAvailableDeviceTypes(library)
                self._devices[library] = (dict(zip(names, types, strict=True)), None)
            except RuntimeError as exc:
                self._devices[library] = ({}, str(exc).strip())
        return self._devices[library]

    def can_create(self, library: str, name: str) -> bool:
        """Whether the library creates device ``name`` (hub peripherals).

        Constructs and destroys the device without initialising it, as
        Micro-Manager's configuration wizard does.
        """
        key = (library, name)
        if key not in self._creatable:
            label = "pairscope-probe"
            try:
                self._core.loadDevice(label, library, name)
            except RuntimeError:
                self._creatable[key] = False
            else:
                self._core.unloadDevice(label)
                self._creatable[key] = True
        return self._creatable[key]


def default_adapter_paths() -> list[Path]:
    """Folders searched for Micro-Manager adapter libraries by default.

    Returns
    -------
    list of Path
        Micro-Manager's installation as pymmcore-plus finds it (the
        ``MICROMANAGER_PATH`` environment variable first), then the simulated
        adapters of the ``mm-test-adapters`` package.

    """
    paths: list[Path] = []
    with contextlib.suppress(Exception):
        found = find_micromanager()
        if isinstance(found, str) and found:
            paths.append(Path(found))
    with contextlib.suppress(ImportError):
        import mm_test_adapters

        paths.append(Path(mm_test_adapters.device_adapter_path()))
    unique: list[Path] = []
    for path in paths:
        if path.resolve() not in [p.resolve() for p in unique]:
            unique.append(path)
    return unique


def pymmcore_version() -> str:
    """Version of pymmcore (its 4th number is the device interface)."""
    import pymmcore

    return str(getattr(pymmcore, "__version__", "?"))
