"""The control panel: path fields with file pickers, and the operation buttons.

Every path is a line edit (type or paste a path) with a "..." button that opens
a file dialog; the operations read the line edits, so scripts and tests set
paths without any dialog.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ControlPanel", "PathField", "PathKind"]


class PathKind(Enum):
    """What a path field asks for, which decides its file dialog."""

    OPEN_FILE = "open file"
    SAVE_FILE = "save file"
    FOLDER = "folder"


class PathField(QWidget):
    """A line edit with a browse button.

    Parameters
    ----------
    kind : PathKind
        File to open, file to write, or a folder.
    name_filter : str
        Filter of the file dialog, e.g. ``"Sessions (*.json)"``.
    placeholder : str
        Grey hint shown while the field is empty.
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(
        self,
        kind: PathKind,
        *,
        name_filter: str = "All files (*)",
        placeholder: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.name_filter = name_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.browse = QPushButton("...")
        self.browse.setFixedWidth(32)
        self.browse.setToolTip(f"Choose a {kind.value}")
        self.browse.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)

    def path(self) -> Path | None:
        """The path typed, or None when the field is empty."""
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: Path | str | None) -> None:
        """Fill the field (None empties it)."""
        self.edit.setText("" if path is None else str(path))

    def _choose(self) -> None:
        start = self.edit.text().strip()
        if self.kind is PathKind.FOLDER:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.kind is PathKind.SAVE_FILE:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Write to", start, self.name_filter
            )
        else:
            chosen, _ = QFileDialog.getOpenFileName(
                self, "Open", start, self.name_filter
            )
        if chosen:
            self.set_path(chosen)


class ControlPanel(QGroupBox):
    """Paths and buttons of the operations.

    Parameters
    ----------
    holder : Path
        Initial holder description.
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, holder: Path, parent: QWidget | None = None) -> None:
        super().__init__("Operations", parent)
        self.holder = PathField(PathKind.OPEN_FILE, name_filter="Holder (*.json)")
        self.holder.set_path(holder)
        self.targets = PathField(
            PathKind.OPEN_FILE,
            name_filter="Sequences (*.yaml *.yml *.json)",
            placeholder="optional: sequence whose positions are the targets",
        )
        self.session = PathField(
            PathKind.SAVE_FILE,
            name_filter="Sessions (*.json)",
            placeholder="written by Find fiducials, read by Relocate",
        )
        self.confocal = PathField(
            PathKind.FOLDER, placeholder="scope A's stacks at the targets"
        )
        self.out = PathField(PathKind.FOLDER, placeholder="new dataset for the stacks")
        self.database = PathField(
            PathKind.FOLDER, placeholder="paired database (created if missing)"
        )
        self.sequence = PathField(
            PathKind.OPEN_FILE,
            name_filter="Sequences (*.yaml *.yml *.json)",
            placeholder="acquisition sequence for live enhancement",
        )
        self.model = PathField(
            PathKind.OPEN_FILE,
            name_filter="Models (*.pt *.pth *.ckpt);;All files (*)",
            placeholder="checkpoint of pairscope train",
        )
        form = QFormLayout()
        form.addRow("Holder", self.holder)
        form.addRow("Targets", self.targets)
        form.addRow("Session", self.session)
        form.addRow("Confocal dataset", self.confocal)
        form.addRow("Output dataset", self.out)
        form.addRow("Database", self.database)
        form.addRow("Sequence", self.sequence)
        form.addRow("Model", self.model)

        self.snap = QPushButton("Snap")
        self.find_fiducials = QPushButton("Find fiducials")
        self.relocate = QPushButton("Relocate")
        self.paired = QPushButton("Paired acquisition")
        self.live = QPushButton("Live enhancement")
        self.save_snap = QPushButton("Save snap...")
        self.snap.setToolTip("One frame from the camera")
        self.save_snap.setToolTip(
            "Write the last snap as an OME-TIFF (pixel size, stage position, "
            "exposure, objective)"
        )
        self.find_fiducials.setToolTip(
            "Scope A: find the holder's marks, write the session (marks, targets)"
        )
        self.relocate.setToolTip(
            "Scope B: find the marks, fit the transform, map the session's targets"
        )
        self.paired.setToolTip(
            "Scope B: relocate, acquire at every target, register into the database"
        )
        self.live.setToolTip("Acquire the sequence, enhancing every stack")
        buttons = QGridLayout()
        for index, button in enumerate(self.buttons()):
            buttons.addWidget(button, index // 3, index % 3)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)

    def buttons(self) -> tuple[QPushButton, ...]:
        """The operation buttons, in panel order."""
        return (
            self.snap,
            self.save_snap,
            self.find_fiducials,
            self.relocate,
            self.paired,
            self.live,
        )

    def set_busy(self, busy: bool) -> None:
        """Disable every button while an operation runs."""
        for button in self.buttons():
            button.setEnabled(not busy)
