"""The log pane: progress lines of the operations, newest at the bottom."""

from __future__ import annotations

import time

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QPlainTextEdit, QWidget

__all__ = ["LogPane"]

MAX_LINES = 5000


class LogPane(QPlainTextEdit):
    """Read-only text pane that keeps the last `MAX_LINES` lines.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)

    def append_line(self, line: str) -> None:
        """Add one line, stamped with the local time, and scroll to it."""
        self.appendPlainText(f"{time.strftime('%H:%M:%S')}  {line}")

    def lines(self) -> list[str]:
        """The lines shown, without their time stamps."""
        return [text.split("  ", 1)[-1] for text in self.toPlainText().splitlines()]
