"""The README's Python API example runs as written and does what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python example under '## Python API'"
    monkeypatch.chdir(ROOT)  # the example names the bundled model by its path
    printed = io.StringIO()
    namespace: dict[str, Any] = {"__name__": "readme"}
    with contextlib.redirect_stdout(printed):
        exec(compile(match.group(1), "README.md", "exec"), namespace)
    lines = printed.getvalue().splitlines()
    # the simulated pair registers within the gate's limit of a wrong pair
    # (0.3 WF px anywhere in the field) against the simulator's truth, and the
    # example prints the gate's verdict with its reason
    registered, pair = namespace["registered"], namespace["pair"]
    assert _worst_lateral_error_px(registered.transform, pair) < 0.3
    assert lines[0] == registered.reason
    assert lines[0].startswith("accepted: " if registered.accepted else "flagged: ")
    # its pair is stored and enhanced on the confocal grid
    pair_id, shape = lines[1].split(" ", 1)
    assert re.fullmatch(r"[0-9a-f]{16}", pair_id)
    assert shape == "(21, 128, 128)"


def _worst_lateral_error_px(transform: Any, pair: Any) -> float:
    """Largest lateral distance, in WF pixels, from the truth over the field."""
    shape = np.array(pair.confocal.data.shape, dtype=np.float64)
    grid = np.stack(
        np.meshgrid(
            [0.0, shape[0] - 1],
            np.linspace(0, shape[1] - 1, 9),
            np.linspace(0, shape[2] - 1, 9),
            indexing="ij",
        ),
        axis=-1,
    ).reshape(-1, 3)
    points_um = (grid - (shape - 1) / 2) * np.array(pair.confocal.voxel_um)
    moved = transform.apply(points_um) - pair.truth.apply(points_um)
    return float(np.hypot(moved[:, 1], moved[:, 2]).max() / pair.widefield.voxel_um[1])
