"""The coarse fiducial search checks what it finds against the holder's layout.

A stage world with scripted detections stands in for a scope, so that a
misidentified mark (the search objective's few pixels per mark can take a
cross for a triangle) appears exactly where the test wants it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import acquire.workflows.fiducial_search as search
from acquire.workflows.relocation import load_holder
from correlate.fiducials.detect import MarkDetection
from correlate.stage.camera_calibration import PixelCalibration

if TYPE_CHECKING:
    import pytest

HOLDER = load_holder(
    Path(__file__).resolve().parents[2] / "hardware_configs" / "demo_holder.json"
)
PIXEL_UM = 0.4
SHAPE = (512, 512)
FOV_UM = SHAPE[0] * PIXEL_UM


def mounted_marks(rotation_deg: float, shift_um: tuple[float, float]) -> dict:
    """Stage xy of every holder mark under a rigid mount."""
    angle = np.deg2rad(rotation_deg)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    return {
        m.identity: rotation @ np.asarray(m.nominal_centre_um) + np.asarray(shift_um)
        for m in HOLDER.marks
    }


class _Core:
    """The two core calls the coarse survey makes itself."""

    def getPixelSizeUm(self) -> float:
        return PIXEL_UM

    def getPosition(self) -> float:
        return 50.0


class StageWorld:
    """Marks at stage positions; ``seen_as`` renames a mark seen in a field.

    ``seen_as`` maps a true identity to ``(shown identity, how many sightings)``
    (None: every sighting).
    """

    def __init__(
        self, marks: dict, seen_as: dict[str, tuple[str, int | None]] | None = None
    ) -> None:
        self.marks = marks
        self.seen_as = dict(seen_as or {})
        self.sightings: dict[str, int] = {}
        self.position = np.asarray(HOLDER.marks[0].nominal_centre_um, dtype=float)
        self.core = _Core()
        self.holder = HOLDER

    def inside(self, xy: np.ndarray) -> bool:
        return bool(np.all(np.abs(xy) < 10_000))

    def move_xy(self, xy: np.ndarray) -> None:
        self.position = np.asarray(xy, dtype=float)

    def xy(self) -> np.ndarray:
        return self.position.copy()

    def detections(self) -> tuple[np.ndarray, tuple[MarkDetection, ...]]:
        found = []
        for identity, where in self.marks.items():
            offset = where - self.position
            if np.any(np.abs(offset) > 0.45 * FOV_UM):
                continue
            shown = identity
            if identity in self.seen_as:
                other, times = self.seen_as[identity]
                count = self.sightings.get(identity, 0)
                if times is None or count < times:
                    shown = other
                self.sightings[identity] = count + 1
            if not shown:  # unidentified: the scope passes on named marks only
                continue
            row = (SHAPE[0] - 1) / 2 + offset[1] / PIXEL_UM
            col = (SHAPE[1] - 1) / 2 + offset[0] / PIXEL_UM
            found.append(MarkDetection(shown, (row, col), 0.9, 700.0, False))
        return np.zeros(SHAPE), tuple(found)


def survey(world: StageWorld, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list]:
    monkeypatch.setattr(search, "autofocus", lambda *_a, **_k: None)
    lines: list[str] = []
    calibration = PixelCalibration(pixel_to_stage=np.eye(2) * PIXEL_UM)
    approx, _fields, _ = search.survey_coarse(
        world,
        use_nominal=True,
        max_fields=400,
        calibration=calibration,
        report=lines.append,
    )
    return approx, lines


def test_layout_conflict_measures_distances_not_angles() -> None:
    marks = mounted_marks(137.0, (250.0, -80.0))
    found = {"F0-disc": np.append(marks["F0-disc"], 90.0)}
    # any rotation keeps the distances: the right mark fits
    assert (
        search.layout_conflict(
            HOLDER, found, "F2-cross", marks["F2-cross"], tolerance_um=20.0
        )
        is None
    )
    # the cross taken for the triangle sits at the diagonal, not at the edge
    conflict = search.layout_conflict(
        HOLDER, found, "F3-triangle", marks["F2-cross"], tolerance_um=20.0
    )
    assert conflict is not None
    assert "3677 um from F0-disc" in conflict and "2600 um apart" in conflict
    # within the tolerance plus 3 % of the distance: 2600 * 1.03 + 20 = 2698
    near = marks["F0-disc"] + np.array([2690.0, 0.0])
    far = marks["F0-disc"] + np.array([2710.0, 0.0])
    assert (
        search.layout_conflict(HOLDER, found, "F1-ring", near, tolerance_um=20.0)
        is None
    )
    assert search.layout_conflict(HOLDER, found, "F1-ring", far, tolerance_um=20.0)


def test_a_mark_at_the_wrong_distance_is_ignored_and_found_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the bench case that failed (bench/relocation.py --quick, mount at 5 deg):
    # F1 not recognised near F0's guess, the cross first seen as the triangle
    marks = mounted_marks(5.0, (-60.0, 40.0))
    seen_as = {"F1-ring": ("", None), "F2-cross": ("F3-triangle", 1)}
    world = StageWorld(marks, seen_as=seen_as)
    approx, lines = survey(world, monkeypatch)
    assert any(line.startswith("ignored F3-triangle") for line in lines)
    assert set(approx) == {"F0-disc", "F2-cross", "F3-triangle"}
    for identity, xyz in approx.items():
        assert np.hypot(*(xyz[:2] - marks[identity])) < 1e-6


def test_a_pair_whose_predictions_are_absent_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # F1 always looks like the triangle and sits as far from F0 as F3 does:
    # the pair (F0, "F3" at F1) fits the distances but predicts the other two
    # marks where nothing is; the search must drop it and find the real F3
    marks = mounted_marks(3.0, (30.0, -20.0))
    world = StageWorld(marks, seen_as={"F1-ring": ("F3-triangle", None)})
    approx, lines = survey(world, monkeypatch)
    assert any(line.startswith("dropped F3-triangle") for line in lines)
    assert set(approx) == {"F0-disc", "F2-cross", "F3-triangle"}
    for identity, xyz in approx.items():
        assert np.hypot(*(xyz[:2] - marks[identity])) < 1e-6
