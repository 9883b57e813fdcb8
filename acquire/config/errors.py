"""The error of a broken configuration file, and the log the checks fill.

Every check names the file, the line and how to fix the problem; the checks
collect all problems and `ProblemLog.raise_first` reports the earliest, so the
user fixes the file from the top down.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from acquire.config.parse import ConfigLine

__all__ = ["ConfigError", "ProblemLog"]


class ConfigError(Exception):
    """A configuration file that cannot be used, with where and how to fix it.

    Parameters
    ----------
    what : str
        What is wrong, one sentence.
    path : Path or str
        The configuration file.
    line_number : int or None
        1-based line number, or None for problems of the whole file.
    line : str or None
        The offending line as written in the file.
    hint : str
        How to fix it, one or two sentences.

    """

    def __init__(
        self,
        what: str,
        *,
        path: Path | str,
        line_number: int | None = None,
        line: str | None = None,
        hint: str = "",
    ) -> None:
        self.what = what.rstrip(". ")
        self.path = Path(path)
        self.line_number = line_number
        self.line = line
        self.hint = hint.strip()
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``<file>:<line>`` (or only the file for whole-file problems)."""
        if self.line_number is None:
            return str(self.path)
        return f"{self.path}:{self.line_number}"

    def __str__(self) -> str:
        text = f"{self.location}: {self.what}."
        return f"{text} {self.hint}" if self.hint else text


class ProblemLog:
    """The problems found in one configuration file, in the order found.

    Parameters
    ----------
    path : Path
        The configuration file.
    problems : iterable of ConfigError
        Problems found before (the parser's).

    """

    def __init__(self, path: Path, problems: Iterable[ConfigError] = ()) -> None:
        self.path = path
        self.problems = list(problems)

    def add(self, line: ConfigLine | None, what: str, hint: str) -> None:
        """Record a problem of ``line`` (None: of the whole file).

        Parameters
        ----------
        line : ConfigLine or None
            The offending line.
        what : str
            What is wrong, one sentence.
        hint : str
            How to fix it.

        """
        self.problems.append(
            ConfigError(
                what,
                path=self.path,
                line_number=None if line is None else line.number,
                line=None if line is None else line.text,
                hint=hint,
            )
        )

    def raise_first(self) -> None:
        """Raise the problem on the earliest line, if there is any.

        Whole-file problems come after every line's; of problems on the same
        line, the one found first is raised.

        Raises
        ------
        ConfigError
            The first problem in file order.

        """
        numbered = [p for p in self.problems if p.line_number is not None]
        if numbered:
            raise min(numbered, key=lambda p: p.line_number or 0)
        if self.problems:
            raise self.problems[0]
