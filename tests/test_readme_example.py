"""The README's Python API example runs as written and does what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

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
    with contextlib.redirect_stdout(printed):
        exec(compile(match.group(1), "README.md", "exec"), {"__name__": "readme"})
    lines = printed.getvalue().splitlines()
    # a simulated pair registers and passes the gate; its pair is stored and
    # enhanced on the confocal grid
    assert lines[0].startswith("accepted: predicted error")
    pair_id, shape = lines[1].split(" ", 1)
    assert re.fullmatch(r"[0-9a-f]{16}", pair_id)
    assert shape == "(21, 128, 128)"
