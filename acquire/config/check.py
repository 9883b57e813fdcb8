"""Pre-load checks of Micro-Manager configuration files, with file and line.

Micro-Manager reports a broken configuration file late and vaguely: a missing
adapter library surfaces as a failed ``loadDevice`` after earlier devices were
already opened, a forgotten pixel-size configuration as a silent pixel size of
zero. `validate_config` reads the file first, as the loader will (including the
``#py `` lines of pymmcore-plus' ``UniMMCore``), and stops with a `ConfigError`
that names the file, the line and how to fix it.

The work is split over ``parse`` (lines), ``line_rules`` (each line),
``file_rules`` (the whole file), ``adapters`` and ``pydevices`` (what the
devices need); this module runs them and re-exports their public names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from acquire.config.adapters import AdapterIndex, default_adapter_paths
from acquire.config.errors import ProblemLog
from acquire.config.file_rules import (
    check_missing_libraries,
    check_objectives,
    check_pixel_presets,
    check_roles,
    find_objective_devices,
)
from acquire.config.line_rules import check_lines
from acquire.config.model import (
    ParsedConfig,
)
from acquire.config.parse import (
    parse_config_lines,
    read_config_text,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "validate_config",
]


def validate_config(
    path: Path | str,
    *,
    adapter_paths: Iterable[Path | str] | None = None,
    require_roles: bool = True,
) -> ParsedConfig:
    """Check a configuration file before loading it.

    Parameters
    ----------
    path : Path or str
        The ``.cfg`` file.
    adapter_paths : iterable of Path or str, optional
        Folders with Micro-Manager adapter libraries, as the loader will use;
        `default_adapter_paths` if None.
    require_roles : bool
        Require a camera, shutter, focus drive and XY stage (pairscope needs
        all four).

    Returns
    -------
    ParsedConfig
        What the file declares.

    Raises
    ------
    ConfigError
        The first problem in file order: missing file; unknown command or wrong
        field count; device label used before it is declared; ``Device`` line
        whose adapter library is not in the search path (all missing libraries
        are listed); ``#py pyDevice`` line whose module does not import or whose
        class is missing or no unicore Device; Python device used on a line
        without ``#py ``; objective label without a pixel-size configuration;
        pixel-size configuration without a size or pointing at an undefined
        label; missing roles.

    """
    cfg_path = Path(path).expanduser().resolve()
    lines, problems = parse_config_lines(read_config_text(cfg_path), cfg_path)
    search = default_adapter_paths() if adapter_paths is None else adapter_paths
    adapters = AdapterIndex([Path(p) for p in search])
    cfg = ParsedConfig(path=cfg_path, lines=lines)
    log = ProblemLog(cfg_path, problems)
    missing = check_lines(cfg, adapters, log)
    check_missing_libraries(cfg, missing, adapters, log)
    if require_roles:
        check_roles(cfg, log)
    cfg.objective_devices = find_objective_devices(cfg)
    check_pixel_presets(cfg, log)
    check_objectives(cfg, log)
    log.raise_first()
    return cfg
