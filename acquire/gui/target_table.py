"""The error table: every relocated target, its predicted error and its pairing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QWidget

if TYPE_CHECKING:
    from collections.abc import Iterable

    from acquire.workflows.pairing import PairOutcome
    from acquire.workflows.relocation import RelocatedTarget

__all__ = ["COLUMNS", "TargetTable"]

COLUMNS = ("target", "x (um)", "y (um)", "z (um)", "TRE (um)", "z err (um)", "status")


class TargetTable(QTableWidget):
    """One row per relocated target; the status column follows the pairing.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._rows: dict[str, int] = {}

    def set_targets(self, targets: Iterable[RelocatedTarget]) -> None:
        """Fill the table with relocated targets."""
        targets = tuple(targets)
        self.setRowCount(len(targets))
        self._rows = {}
        for row, target in enumerate(targets):
            x, y, z = target.stage_xyz_um
            status = "too uncertain" if target.too_uncertain else "ok"
            values = (
                target.name,
                f"{x:.1f}",
                f"{y:.1f}",
                f"{z:.2f}",
                f"{target.predicted_tre_um:.2f}",
                f"{target.predicted_z_error_um:.2f}",
                status,
            )
            for column, value in enumerate(values):
                self.setItem(row, column, QTableWidgetItem(value))
            self._rows[target.name] = row

    def set_outcome(self, outcome: PairOutcome) -> None:
        """Show how a target's pairing went in its status column."""
        row = self._rows.get(outcome.position_name)
        if row is None:
            return
        item = QTableWidgetItem(outcome_text(outcome, with_reason=False))
        item.setToolTip(outcome_text(outcome))
        self.setItem(row, len(COLUMNS) - 1, item)

    def column_texts(self, column: int) -> list[str]:
        """Texts of one column, top to bottom."""
        items = (self.item(row, column) for row in range(self.rowCount()))
        return [item.text() if item is not None else "" for item in items]


def outcome_text(outcome: PairOutcome, *, with_reason: bool = True) -> str:
    """One line for a registered pair: accepted or why not, NCC, start offset."""
    verdict = "paired" if outcome.accepted else "rejected"
    if with_reason and not outcome.accepted and outcome.reason:
        verdict += f" ({outcome.reason})"
    parts = [verdict]
    ncc = outcome.metrics.get("ncc")
    if isinstance(ncc, int | float) and math.isfinite(ncc):
        parts.append(f"ncc {ncc:.2f}")
    parts.append(f"started {outcome.start_offset_um:.2f} um off")
    return ", ".join(parts)
