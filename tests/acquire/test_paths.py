"""The one check every command makes before it writes a new file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from acquire.errors import UserError
from acquire.paths import check_new_file, check_output_file

if TYPE_CHECKING:
    from pathlib import Path


def test_a_new_file_in_an_existing_folder_is_accepted_and_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_new_file(tmp_path / "a.png") == tmp_path / "a.png"
    relative = check_new_file(type(tmp_path)("b.yaml"))
    assert relative.is_absolute() and relative == tmp_path / "b.yaml"


def test_each_refusal_names_the_file_the_option_and_the_fix(tmp_path: Path) -> None:
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"keep")
    with pytest.raises(UserError) as info:
        check_new_file(existing, what="model file", overwrite=False)
    assert str(info.value) == (
        f"model file {str(existing)!r} already exists. "
        "Choose another --out, or pass --overwrite to replace it."
    )
    # a command without --overwrite does not offer it
    with pytest.raises(UserError) as info:
        check_new_file(existing, what="sequence file", option="--export")
    assert str(info.value).endswith("Choose another --export.")
    assert check_new_file(existing, overwrite=True) == existing
    with pytest.raises(UserError, match=r"--out .* is a folder\. Give a file name"):
        check_new_file(tmp_path, overwrite=True)
    with pytest.raises(UserError, match=r"the folder .*nowhere' of --out does not"):
        check_new_file(tmp_path / "nowhere" / "x.png")
    assert existing.read_bytes() == b"keep"


def test_an_ome_tiff_needs_its_extension_before_anything_else(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"must end in \.ome\.tif.*snap\.ome\.tif"):
        check_output_file(tmp_path / "nowhere" / "snap.tif", overwrite=False)
    assert check_output_file(tmp_path / "snap.OME.TIF", overwrite=False).parent == (
        tmp_path
    )
