"""The append-only journal: torn lines are ignored and never break appends."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from acquire.storage.journal import Journal

if TYPE_CHECKING:
    from pathlib import Path


def entry(name: str) -> dict[str, object]:
    return {
        "stack": name,
        "path": f"{name}.ome.zarr",
        "planes": 4,
        "committed_at": "2026-01-01T00:00:00.000+00:00",
        "sha256": "0" * 64,
    }


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    contents = Journal(tmp_path / "journal.jsonl").read()
    assert contents.entries == ()
    assert contents.skipped_lines == 0
    assert contents.stacks == frozenset()


def test_append_writes_one_line_per_entry(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(entry("a"))
    journal.append(entry("b"))
    raw = journal.path.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    assert [json.loads(line)["stack"] for line in raw.splitlines()] == ["a", "b"]
    assert journal.read().stacks == {"a", "b"}


def test_torn_last_line_is_ignored_and_next_append_starts_a_fresh_line(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(entry("a"))
    torn = json.dumps(entry("b"))[:37]
    with journal.path.open("ab") as handle:
        handle.write(torn.encode())
    contents = journal.read()
    assert contents.stacks == {"a"}
    assert contents.skipped_lines == 1

    journal.append(entry("c"))
    lines = journal.path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == torn
    assert json.loads(lines[2])["stack"] == "c"
    contents = journal.read()
    assert contents.stacks == {"a", "c"}
    assert contents.skipped_lines == 1


def test_complete_entry_without_final_newline_counts(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps(entry("a")), encoding="utf-8")
    journal = Journal(path)
    assert journal.read().stacks == {"a"}
    journal.append(entry("b"))
    assert journal.read().stacks == {"a", "b"}
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_lines_that_are_not_complete_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    incomplete = {k: v for k, v in entry("x").items() if k != "sha256"}
    wrong_type = {**entry("y"), "planes": True}
    lines = [
        json.dumps(entry("a")).encode(),
        b"[1, 2]",
        json.dumps(incomplete).encode(),
        json.dumps(wrong_type).encode(),
        b'{"stack": "\xff\xfe not utf-8"}',
        b"",
        json.dumps(entry("b")).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    contents = Journal(path).read()
    assert [e["stack"] for e in contents.entries] == ["a", "b"]
    assert contents.skipped_lines == 4
