"""Paths recorded in manifests and sessions survive moving the folder holding them."""

from __future__ import annotations

import shutil
from pathlib import Path

from acquire.storage.recorded_paths import record_path, resolve_recorded_path


def test_a_neighbour_is_recorded_relative_and_found_after_a_move(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "session").mkdir(parents=True)
    (project / "session" / "s.json").write_text("{}")
    dataset = project / "widefield"
    dataset.mkdir()
    recorded = record_path(project / "session" / "s.json", relative_to=dataset)
    assert recorded == "../session/s.json"
    moved = shutil.move(project, tmp_path / "elsewhere" / "project")
    found = resolve_recorded_path(recorded, relative_to=Path(moved) / "widefield")
    assert found.read_text() == "{}"


def test_a_path_outside_the_project_stays_absolute(tmp_path: Path) -> None:
    dataset = tmp_path / "a" / "b" / "dataset"
    dataset.mkdir(parents=True)
    model = tmp_path / "models" / "m.pt"
    recorded = record_path(model, relative_to=dataset)
    assert Path(recorded).is_absolute() and Path(recorded) == model.resolve()
    assert resolve_recorded_path(recorded, relative_to=dataset) == model.resolve()
