"""Bad input over every command, classified: clean, unclear, silent, traceback, lost.

Each case builds a mistake a user (or a crash, or a damaged disk) can make,
runs ``pairscope`` on it in a fresh process, and classifies what came back:

``clean``
    exit 2 (or 3), one ``pairscope: error:`` message that names what the
    case says it must (the file, the option, the stack), no traceback;
``unclear``
    refused without a traceback, but the message does not name it;
``silent``
    exit 0: the mistake went through;
``traceback``
    a Python traceback, a crash (exit 1), a kill or a timeout;
``left``
    refused, but an output the refusal should have prevented was created
    (a half-made dataset that the corrected command then cannot use);
``lost``
    a file the case protects changed or vanished, or a crafted file ran
    code (whatever the exit).

The checkout under test is given with ``--checkout`` (default: this one), so
the same cases can be run on an older commit, e.g. a ``git worktree`` of the
commit before issue 18::

    git worktree add /tmp/before 5d07611
    python bench/bad_inputs.py --checkout /tmp/before --label before
    python bench/bad_inputs.py --label after

Fixtures (a dataset, a pair database, sessions, models) are built with this
checkout's code; each case runs the checkout under test. Writes
``bench/results/bad_inputs_<label>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WIDEFIELD = ROOT / "hardware_configs" / "demo_widefield.cfg"
HOLDER = ROOT / "hardware_configs" / "demo_holder.json"
MODEL = ROOT / "enhance" / "models" / "demo_widefield_to_confocal.pt"
TIMEOUT_S = 180.0
MEMORY_LIMIT_BYTES = 4 * 1024**3


@dataclass
class Case:
    """One mistake: the command line, what a clean message names, what must stay."""

    name: str
    args: list[str]
    must_name: list[str]
    protected: list[Path] = field(default_factory=list)
    must_not_exist: list[Path] = field(default_factory=list)
    code_ran_if: Path | None = None


def _sha(path: Path) -> str | None:
    if path.is_symlink() or not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for child in sorted(path.rglob("*")):
        if child.is_file():
            digest.update(str(child.relative_to(path)).encode())
            digest.update(child.read_bytes())
    return digest.hexdigest()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- fixtures (built with this checkout) ---------------------------------------


def _dataset(folder: Path) -> Path:
    """A small committed dataset on the demo wide-field scope."""
    from acquire.workflows.acquisition import AcquisitionRequest, run_acquisition

    sequence = _write(
        folder / "seq.yaml",
        "stage_positions:\n  - {x: 0, y: 0, z: 0, name: a}\n"
        "  - {x: 300, y: 0, z: 0, name: b}\n"
        "z_plan: {range: 1.0, step: 0.5}\naxis_order: pcz\n",
    )
    out = folder / "dataset"
    result = run_acquisition(AcquisitionRequest(sequence, WIDEFIELD, out))
    assert result.status == "complete", result
    return out


def _chunks(folder: Path) -> list[Path]:
    """The pixel chunk files of a Zarr v3 store (everything but metadata)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zattrs", ".zgroup")
    )


def _pair_database(folder: Path, voxel_size_um: tuple[float, float, float]) -> Path:
    from correlate.pairdb import PairDatabase, StackMeta

    db = PairDatabase.create(folder / "pairs")
    rng = np.random.default_rng(0)
    meta = StackMeta(
        scope="bench",
        objective=None,
        stage_xyz_um=(0.0, 0.0, 0.0),
        voxel_size_um=voxel_size_um,
        acquired_at=None,
        source="bench",
    )
    for cell in range(6):
        confocal = rng.random((16, 64, 64)).astype(np.float32) * 100
        db.add_pair(
            widefield=confocal + 10,
            confocal=confocal,
            voxel_size_um=voxel_size_um,
            cell_id=f"cell{cell}",
            transform={},
            metrics={"ncc": 0.9},
            accepted=True,
            widefield_meta=meta,
            confocal_meta=meta,
        )
    return db.path


def _session(path: Path, *, marks: Any = None, target: Any = None) -> Path:
    from acquire.storage.session import CorrelationSession, Target
    from acquire.workflows.relocation import load_holder

    holder = load_holder(HOLDER)
    session = CorrelationSession(
        scope="demo_confocal",
        holder=holder,
        marks={m.identity: (*m.nominal_centre_um, 0.0) for m in holder.marks},
        targets=(Target("cell0", (0.0, 0.0, 0.0)),),
        calibrations={},
    )
    data = session.to_dict()
    if marks is not None:
        data["marks"] = marks
    if target is not None:
        data["targets"][0]["stage_xyz_um"] = target
    path.write_text(json.dumps(data), encoding="utf-8")  # NaN written as NaN
    return path


def _holder(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(HOLDER.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _model_variants(folder: Path) -> dict[str, Path]:
    import torch

    payload = torch.load(MODEL, map_location="cpu", weights_only=True)
    metadata = json.loads(payload["metadata_json"])
    metadata["unet"]["base_channels"] = 100_000
    huge = dict(payload, metadata_json=json.dumps(metadata))
    torch.save(huge, folder / "huge.pt")
    (folder / "random.pt").write_bytes(np.random.default_rng(1).bytes(4096))
    marker = folder / "pwned"

    class Crafted:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    with (folder / "crafted.pt").open("wb") as handle:
        pickle.dump({"format": "x", "state_dict": Crafted()}, handle)
    return {
        "huge": folder / "huge.pt",
        "random": folder / "random.pt",
        "crafted": folder / "crafted.pt",
        "marker": marker,
    }


def _ome_tiff_inf_voxel(path: Path) -> Path:
    import tifffile

    tifffile.imwrite(
        path,
        np.ones((4, 32, 32), np.uint16),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeZ": math.inf,
        },
    )
    return path


def _ome_tiff_two_channels(path: Path) -> Path:
    import tifffile

    tifffile.imwrite(
        path,
        np.ones((2, 4, 32, 32), np.uint16),
        ome=True,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeZ": 0.25,
        },
    )
    return path


# -- the cases ------------------------------------------------------------------


def build_cases(work: Path) -> list[Case]:
    """Every case, with its files under ``work``."""
    from enhance.checkpoint import load_checkpoint

    cfg = str(WIDEFIELD)
    cases: list[Case] = []

    def seq(name: str, text: str, *, must: list[str] | None = None) -> None:
        path = _write(work / "seq" / f"{name}.yaml", text)
        cases.append(
            Case(
                f"acquire: {name}",
                ["acquire", str(path), "--config", cfg, "--out", str(work / name)],
                must or [path.name],
                must_not_exist=[work / name],
            )
        )

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    seq("alias_bomb", "metadata:\n  " + bomb.replace("\n", "\n  ") + "\n")
    seq("nan_z_plan", "z_plan: {range: .nan, step: 0.5}\n")
    seq("inf_position", "stage_positions:\n  - {x: .inf, y: 0, z: 0}\n")
    seq("zero_step", "z_plan: {range: 2, step: 0}\n")
    seq("unknown_key", "z_plann: {range: 2, step: 0.5}\n")
    seq("not_yaml", "z_plan: [range: 2\n")
    seq("empty", "")
    seq("a_list", "- channels\n")
    seq("unknown_preset", "channels: [{config: GFPP}]\n", must=["GFPP"])
    seq("far_outside_limits", "stage_positions:\n  - {x: 1.0e9, y: 0, z: 0}\n")
    deep = work / "seq" / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    cases.append(
        Case(
            "acquire: 100k-deep JSON",
            ["acquire", str(deep), "--config", cfg, "--out", str(work / "deep")],
            ["deep.json"],
        )
    )
    big = work / "seq" / "big.yaml"
    with big.open("w") as handle:
        handle.write("stage_positions:\n")
        for k in range(120_000):
            handle.write(f"  - {{x: {k % 1000}, y: {k // 1000}, z: 0}}\n")
    cases.append(
        Case(
            "acquire: 120k positions (5 MB)",
            [
                "acquire",
                str(big),
                "--config",
                cfg,
                "--out",
                str(work / "big"),
                "--dry-run",
            ],
            ["big.yaml"],
        )
    )
    missing = work / "seq" / "missing.yaml"
    cases.append(
        Case(
            "acquire: missing sequence",
            ["acquire", str(missing), "--config", cfg, "--out", str(work / "m")],
            ["missing.yaml"],
        )
    )
    occupied = work / "occupied"
    _write(occupied / "precious.txt", "keep me")
    ok_seq = _write(
        work / "seq" / "ok.yaml",
        "stage_positions: [{x: 0, y: 0, z: 0}]\nz_plan: {range: 1, step: 0.5}\n",
    )
    cases.append(
        Case(
            "acquire: --out holds files",
            ["acquire", str(ok_seq), "--config", cfg, "--out", str(occupied)],
            ["occupied"],
            protected=[occupied],
        )
    )
    autofocused = _write(
        work / "seq" / "autofocus.yaml",
        "stage_positions: [{x: 0, y: 0, z: 0}]\nz_plan: {range: 1, step: 0.5}\n"
        "autofocus_plan: {autofocus_motor_offset: 0, axes: [p]}\n",
    )
    cases.append(
        Case(
            "acquire: autofocus plan, scope without autofocus",
            ["acquire", str(autofocused), "--config", cfg, "--out", str(work / "af")],
            ["autofocus.yaml", "autofocus"],
            must_not_exist=[work / "af"],
        )
    )
    cases.append(
        Case(
            "acquire: config missing",
            [
                "acquire",
                str(ok_seq),
                "--config",
                str(work / "no.cfg"),
                "--out",
                str(work / "x"),
            ],
            ["no.cfg"],
        )
    )

    # datasets damaged by a crash, a disk or a hand
    dataset = _dataset(work / "fixture")
    seq_path = str(work / "fixture" / "seq.yaml")
    linked = work / "linked"
    shutil.copytree(dataset, linked)
    outside = work / "outside"
    _write(outside / "thesis.docx", "years of work")
    shutil.rmtree(linked / ".staging", ignore_errors=True)
    (linked / ".staging").symlink_to(outside, target_is_directory=True)
    cases.append(
        Case(
            "acquire --resume: .staging is a link out of the dataset",
            ["acquire", seq_path, "--config", cfg, "--out", str(linked), "--resume"],
            [".staging"],
            protected=[outside],
        )
    )
    escaping = work / "escaping"
    shutil.copytree(dataset, escaping)
    _write(work / "outside_stack.ome.zarr" / "zarr.json", "{}")
    line = {
        "stack": "../outside_stack",
        "path": "../outside_stack.ome.zarr",
        "planes": 3,
        "committed_at": "2026-01-01T00:00:00+00:00",
        "sha256": "0" * 64,
    }
    with (escaping / "journal.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    cases.append(
        Case(
            "acquire --resume: a journal line names ../outside_stack",
            ["acquire", seq_path, "--config", cfg, "--out", str(escaping), "--resume"],
            ["journal"],
            protected=[work / "outside_stack.ome.zarr"],
        )
    )
    stacks = sorted(dataset.glob("*.ome.zarr"))
    holed = work / "holed"
    shutil.copytree(dataset, holed)
    _chunks(holed / stacks[0].name)[1].unlink()
    scrambled = work / "scrambled"
    shutil.copytree(dataset, scrambled)
    chunk = _chunks(scrambled / stacks[0].name)[1]
    chunk.write_bytes(np.random.default_rng(2).bytes(chunk.stat().st_size))
    for label, folder in (("a missing chunk", holed), ("a chunk of noise", scrambled)):
        cases.append(
            Case(
                f"enhance: a committed stack with {label}",
                [
                    "enhance",
                    str(MODEL),
                    str(folder),
                    "--out",
                    str(work / f"e-{folder.name}"),
                    "--resample",
                    "--device",
                    "cpu",
                ],
                [stacks[0].name.removesuffix(".ome.zarr")],
                must_not_exist=[work / f"e-{folder.name}"],
            )
        )
    unreadable = work / "garbled"
    shutil.copytree(dataset, unreadable)
    (unreadable / "journal.jsonl").write_bytes(b"\x00\xff" * 100)
    cases.append(
        Case(
            "enhance: the journal is binary garbage",
            [
                "enhance",
                str(MODEL),
                str(unreadable),
                "--out",
                str(work / "e-unreadable"),
                "--resample",
            ],
            ["journal"],
            must_not_exist=[work / "e-unreadable"],
        )
    )
    cases.append(
        Case(
            "pairs build: --widefield is not a dataset",
            [
                "pairs",
                "build",
                "--widefield",
                str(work / "seq"),
                "--db",
                str(work / "d"),
            ],
            ["seq"],
        )
    )

    # snap
    snap_out = work / "snap.ome.tif"
    cases.append(
        Case(
            "snap: --xy 1e9 1e9 (past the stage limits)",
            ["snap", "--config", cfg, "--out", str(snap_out), "--xy", "1e9", "1e9"],
            ["limit"],
            must_not_exist=[snap_out],
        )
    )
    cases.append(
        Case(
            "snap: --exposure-ms nan",
            ["snap", "--config", cfg, "--out", str(snap_out), "--exposure-ms", "nan"],
            ["--exposure"],
        )
    )
    existing = _write(work / "existing.ome.tif", "not an image, but mine")
    cases.append(
        Case(
            "snap: --out exists",
            ["snap", "--config", cfg, "--out", str(existing)],
            ["existing.ome.tif"],
            protected=[existing],
        )
    )

    # holders (fiducials)
    def holder_case(name: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = _holder(work / "holders" / f"{name}.json", change)
        out = work / f"session-{name}.json"
        cases.append(
            Case(
                f"fiducials: holder {name}",
                [
                    "fiducials",
                    "--config",
                    cfg,
                    "--out",
                    str(out),
                    "--holder",
                    str(path),
                ],
                [path.name],
                must_not_exist=[out],
            )
        )

    (work / "holders").mkdir()
    holder_case("without marks", lambda d: d.update(marks=[]))
    holder_case("size 1e30", lambda d: d["marks"][0].update(size_um=1e30))
    holder_case(
        "infinite centre", lambda d: d["marks"][0].update(nominal_centre_um=[1e999, 0])
    )
    holder_case("marks as a mapping", lambda d: d.update(marks={"a": 1}))
    not_json = _write(work / "holders" / "not_json.json", "{marks: ")
    cases.append(
        Case(
            "fiducials: holder not JSON",
            [
                "fiducials",
                "--config",
                cfg,
                "--out",
                str(work / "s.json"),
                "--holder",
                str(not_json),
            ],
            ["not_json.json"],
        )
    )

    # sessions (relocate)
    sessions = work / "sessions"
    sessions.mkdir()
    for name, path in (
        ("marks as a list", _session(sessions / "list.json", marks=[[0, 0, 0]])),
        ("a NaN target", _session(sessions / "nan.json", target=[math.nan, 0, 0])),
        ("missing", sessions / "missing.json"),
        ("not a session", _write(sessions / "other.json", '{"format": "zen"}')),
    ):
        cases.append(
            Case(
                f"relocate: session {name}",
                ["relocate", str(path), "--config", cfg],
                [path.name],
            )
        )
    good_session = _session(sessions / "good.json")
    taken = _write(work / "taken.yaml", "mine")
    cases.append(
        Case(
            "relocate: --export exists (checked before the search)",
            ["relocate", str(good_session), "--config", cfg, "--export", str(taken)],
            ["taken.yaml"],
            protected=[taken],
        )
    )
    cases.append(
        Case(
            "relocate: --template missing (checked before the search)",
            [
                "relocate",
                str(good_session),
                "--config",
                cfg,
                "--export",
                str(work / "targets.yaml"),
                "--template",
                str(work / "nope.yaml"),
            ],
            ["nope.yaml"],
        )
    )

    # training, models, evaluation
    voxel = load_checkpoint(MODEL).voxel_size_um
    db = _pair_database(work / "dbfix", voxel)
    for option, value in (("--lr", "nan"), ("--max-minutes", "nan"), ("--lr", "-1")):
        cases.append(
            Case(
                f"train: {option} {value}",
                ["train", str(db), "--out", str(work / "m.pt"), option, value],
                [option],
                must_not_exist=[work / "m.pt"],
            )
        )
    cases.append(
        Case(
            "train: database missing",
            ["train", str(work / "nodb"), "--out", str(work / "m.pt")],
            ["nodb"],
        )
    )
    models = _model_variants(work)
    tiff = _ome_tiff_inf_voxel(work / "inf_voxel.ome.tif")
    for name in ("huge", "random", "crafted"):
        cases.append(
            Case(
                f"enhance: model {name}",
                [
                    "enhance",
                    str(models[name]),
                    str(tiff),
                    "--out",
                    str(work / f"o-{name}"),
                ],
                [models[name].name],
                must_not_exist=[work / f"o-{name}"],
                code_ran_if=models["marker"],
            )
        )
    cases.append(
        Case(
            "enhance: OME-TIFF with an infinite z step",
            ["enhance", str(MODEL), str(tiff), "--out", str(work / "o-inf")],
            ["inf_voxel.ome.tif"],
            must_not_exist=[work / "o-inf"],
        )
    )
    two_channels = _ome_tiff_two_channels(work / "two_channels.ome.tif")
    cases.append(
        Case(
            "enhance: two-channel OME-TIFF without --channel",
            ["enhance", str(MODEL), str(two_channels), "--out", str(work / "o-2c")],
            ["two_channels.ome.tif", "--channel"],
            must_not_exist=[work / "o-2c"],
        )
    )
    broken_db = work / "broken_db"
    shutil.copytree(db, broken_db)
    for pair in (broken_db / "pairs").glob("*.ome.zarr"):
        _chunks(pair)[0].write_bytes(b"garbage")
    cases.append(
        Case(
            "evaluate: pair chunks damaged",
            [
                "evaluate",
                str(MODEL),
                str(broken_db),
                "--out",
                str(work / "ev"),
                "--split",
                "train",
                "--rl-iterations",
                "2",
            ],
            ["pair"],
        )
    )
    return cases


# -- running and classifying --------------------------------------------------


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def run_case(case: Case, checkout: Path) -> dict[str, Any]:
    """Run one case in a fresh process and classify the outcome."""
    before = {p: _sha(p) for p in case.protected}
    env = dict(os.environ, PYTHONPATH=str(checkout), QT_QPA_PLATFORM="offscreen")
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from acquire.cli.main import main; main()",
                *case.args,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            cwd=checkout,
            preexec_fn=_limit_memory if os.name == "posix" else None,
            check=False,
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, output = -1, f"timed out after {TIMEOUT_S:.0f} s"
    seconds = time.perf_counter() - started
    lost = [str(p) for p, sha in before.items() if _sha(p) != sha]
    if case.code_ran_if is not None and case.code_ran_if.exists():
        lost.append(f"{case.code_ran_if} (a crafted file ran code)")
    left = [str(p) for p in case.must_not_exist if p.exists()]
    if lost:
        verdict = "lost"
    elif "Traceback (most recent call last)" in output or code not in (0, 2, 3):
        verdict = "traceback"
    elif code == 0:
        verdict = "silent"
    elif left:
        verdict = "left"
    elif "error" in output and all(n.lower() in output.lower() for n in case.must_name):
        verdict = "clean"
    else:
        verdict = "unclear"
    message = next(
        (line for line in output.splitlines() if "error" in line.lower()),
        output.strip().splitlines()[-1] if output.strip() else "",
    )
    return {
        "case": case.name,
        "verdict": verdict,
        "exit_code": code,
        "seconds": round(seconds, 2),
        "message": " ".join(message.split())[:300],
        "lost": lost,
        "left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pairscope-bad-") as tmp:
        for case in build_cases(Path(tmp)):
            row = run_case(case, checkout)
            rows.append(row)
            print(
                f"{row['verdict']:9s} {row['exit_code']:4d} {row['case']}: "
                f"{row['message'][:110]}",
                flush=True,
            )
    counts = Counter(r["verdict"] for r in rows)
    summary = {
        v: counts.get(v, 0)
        for v in ("clean", "unclear", "left", "silent", "traceback", "lost")
    }
    print(f"\n{len(rows)} cases on {commit} ({args.label}): {summary}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bad_inputs_{args.label}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "bad_inputs",
                "checkout_commit": commit,
                "label": args.label,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "summary": {"cases": len(rows), **summary},
                "cases": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
