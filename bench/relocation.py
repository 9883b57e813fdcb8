"""Relocation accuracy and time over random mounts, against the simulator's truth.

For each mount seed, both demo scopes get a random hidden mount (rotation
anywhere in +-180 deg, translation +-1 mm, z +-100 um, tilt, 0.5 % stage scale
error, 0.2 um stage repeatability). The confocal finds the fiducial marks and
records 20 cells as targets; the wide-field finds the marks, fits the
transform and maps the targets. Errors are measured against where the cells
really are on the wide-field stage.

Suites: ``default`` images an evenly lit, clean coverslip; ``uneven`` turns
on the simulator's uneven illumination (vignetting per objective and a tilted
field) and dust and debris (scattered, and beside every mark): the settings
in :data:`UNEVEN`; ``media`` puts the cells in water under both oil
objectives (:data:`MEDIA`): the marks lie on the coverslip's surface, the
targets :data:`MEDIA_TARGET_HEIGHT_UM` deep in the medium, where each scope's
focal shift (its NA) maps depth to stage z differently.

Usage::

    python bench/relocation.py [--quick] [--mounts N] [--suite default|uneven|media]

Prints a table and writes ``bench/results/relocation.json`` (``--quick``:
``relocation_quick.json``; suite ``uneven``: ``relocation_uneven.json``,
``media``: ``relocation_media.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "hardware_configs"
RESULTS = ROOT / "bench" / "results" / "relocation.json"
N_TARGETS = 20
#: Camera properties of the ``uneven`` suite, per scope (see
#: acquire/sim/illumination.py and acquire/sim/debris.py). Autofluorescence is
#: left out: with it the confocal's first, coarse autofocus on the coverslip
#: (gradient energy, acquire/hardware/autofocus.py) loses its contrast on some mounts,
#: which is the autofocus' limit, not the mark detection's.
UNEVEN: dict[str, dict[str, str]] = {
    "widefield": {
        "Vignetting": "10x:0.35 40x:0.2 63x:0.15",
        "IlluminationTiltPercent": "20",
        "IlluminationTiltDeg": "35",
        "DebrisPerMm2": "20",
        "DebrisNearMarks": "2",
    },
    "confocal": {
        "Vignetting": "10x:0.3 40x:0.1",
        "IlluminationTiltPercent": "15",
        "IlluminationTiltDeg": "-120",
        "DebrisPerMm2": "20",
        "DebrisNearMarks": "2",
    },
}
#: Camera properties of the ``media`` suite (docs/configs.md, sample media).
MEDIA: dict[str, dict[str, str]] = {
    "widefield": {"SampleMedium": "water"},
    "confocal": {"SampleMedium": "water"},
}
#: Height of the targets above the glass in the ``media`` suite (the others: 2).
MEDIA_TARGET_HEIGHT_UM = 8.0
SUITES = ("default", "uneven", "media")
SUITE_SETTINGS = {"default": {}, "uneven": UNEVEN, "media": MEDIA}
_STARTED_S = time.perf_counter()
"""Start of this run, for the whole run's wall time (the quick target)."""


def mounted_config(
    folder: Path,
    name: str,
    seed: int,
    max_rotation_deg: float = 180.0,
    max_translation_um: float = 1000.0,
    suite: str = "default",
) -> Path:
    """A demo config with its own random mount (rotation up to +-180 degrees)."""
    text = (CONFIGS / f"demo_{name}.cfg").read_text()
    text += (
        f"\n#py Property,Camera,MountSeed,{seed}"
        f"\n#py Property,Camera,MountMaxRotationDeg,{max_rotation_deg:g}"
        f"\n#py Property,Camera,MountMaxTranslationUm,{max_translation_um:g}"
        "\n#py Property,Camera,RealTiming,No\n"
    )
    settings = SUITE_SETTINGS[suite].get(name, {})
    text += "".join(
        f"#py Property,Camera,{key},{value}\n" for key, value in settings.items()
    )
    path = folder / f"{name}_{seed}.cfg"
    path.write_text(text)
    return path


def results_path(quick: bool, suite: str = "default") -> Path:
    """Where the results go (a quick run never overwrites the full one)."""
    name = "relocation" if suite == "default" else f"relocation_{suite}"
    return RESULTS.with_name(f"{name}_quick.json" if quick else f"{name}.json")


def run_mount(
    folder: Path,
    seed: int,
    max_rotation_deg: float = 180.0,
    max_translation_um: float = 1000.0,
    suite: str = "default",
) -> dict[str, object]:
    from acquire.hardware.microscope import scope
    from acquire.sim import groundtruth
    from acquire.storage.session import Target
    from acquire.workflows.relocation import load_holder, record_fiducials, relocate

    confocal = mounted_config(
        folder, "confocal", 1000 + 2 * seed, max_rotation_deg, max_translation_um, suite
    )
    widefield = mounted_config(
        folder,
        "widefield",
        1001 + 2 * seed,
        max_rotation_deg,
        max_translation_um,
        suite,
    )
    holder = load_holder(CONFIGS / "demo_holder.json")
    height_um = MEDIA_TARGET_HEIGHT_UM if suite == "media" else 2.0
    with scope(confocal) as core:
        n_cells = len(groundtruth.specimen_of(core).cells)
        cells = np.linspace(0, n_cells - 1, N_TARGETS).astype(int)
        targets = tuple(
            Target(
                f"cell{c}",
                groundtruth.stage_position_of_cell(core, int(c), height_um=height_um),
            )
            for c in cells
        )
    session = folder / f"session_{seed}.json"
    started = time.perf_counter()
    _, found_a = record_fiducials(confocal, session, holder, targets=targets)
    time_a = time.perf_counter() - started
    started = time.perf_counter()
    transform, relocated, found_b = relocate(session, widefield)
    time_b = time.perf_counter() - started
    with scope(widefield) as core:
        truth = np.array(
            [
                groundtruth.stage_position_of_cell(core, int(c), height_um=height_um)
                for c in cells
            ]
        )
    got = np.array([t.stage_xyz_um for t in relocated])
    lateral = np.hypot(*(got[:, :2] - truth[:, :2]).T)
    axial = np.abs(got[:, 2] - truth[:, 2])
    predicted = np.array([t.predicted_tre_um for t in relocated])
    return {
        "seed": seed,
        "model": transform.model,
        "marks_found": [len(found_a.marks), len(found_b.marks)],
        "lateral_rms_um": float(np.sqrt(np.mean(lateral**2))),
        "lateral_max_um": float(lateral.max()),
        "axial_rms_um": float(np.sqrt(np.mean(axial**2))),
        "axial_max_um": float(axial.max()),
        "predicted_tre_rms_um": float(np.sqrt(np.mean(predicted**2))),
        "find_and_fit_s": {"confocal": round(time_a, 1), "widefield": round(time_b, 1)},
        "fields_searched": [found_a.fields_searched, found_b.fields_searched],
    }


def _write(
    rows: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    quick: bool,
    n_mounts: int,
    suite: str = "default",
) -> dict[str, Any]:
    """Summarise the mounts measured so far and save the results file."""
    lateral = np.array([r["lateral_rms_um"] for r in rows])
    axial = np.array([r["axial_rms_um"] for r in rows])
    predicted = np.array([r["predicted_tre_rms_um"] for r in rows])
    ratios = predicted / lateral
    summary = {
        "mounts_measured": len(rows),
        "mounts_failed": len(failures),
        "mounts_planned": n_mounts,
        "targets_per_mount": N_TARGETS,
        "lateral_rms_um": float(np.sqrt(np.mean(lateral**2))),
        "lateral_max_um": float(max(r["lateral_max_um"] for r in rows)),
        "axial_rms_um": float(np.sqrt(np.mean(axial**2))),
        "axial_max_um": float(max(r["axial_max_um"] for r in rows)),
        "predicted_over_measured_lateral": float(
            np.sqrt(np.mean(predicted**2)) / np.sqrt(np.mean(lateral**2))
        ),
        "predicted_over_measured_per_mount": {
            "min": float(min(ratios)),
            "max": float(max(ratios)),
            "within_factor_2": int(sum(0.5 <= r <= 2.0 for r in ratios)),
        },
        "all_marks_found": all(r["marks_found"] == [4, 4] for r in rows),
        "mean_time_s": {
            "confocal_find": float(
                np.mean([r["find_and_fit_s"]["confocal"] for r in rows])
            ),
            "widefield_find_and_fit": float(
                np.mean([r["find_and_fit_s"]["widefield"] for r in rows])
            ),
        },
    }
    results = {
        "benchmark": "relocation",
        "targets": {
            "lateral_rms_um": 0.5,
            "axial_rms_um": 0.5,
            "predicted_over_measured": [0.5, 2.0],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "quick": quick,
        "suite": suite,
        "camera_settings": SUITE_SETTINGS[suite],
        "target_height_um": MEDIA_TARGET_HEIGHT_UM if suite == "media" else 2.0,
        "run_wall_s": round(time.perf_counter() - _STARTED_S, 1),
        "summary": summary,
        "per_mount": rows,
        "failed_mounts": failures,
    }
    path = results_path(quick, suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one holder placed against a stop (rotation within +-5 deg, "
        "translation within +-300 um): under a minute",
    )
    parser.add_argument(
        "--mounts", type=int, default=20, help="random mounts (default 20)"
    )
    parser.add_argument(
        "--suite",
        choices=SUITES,
        default="default",
        help="default: evenly lit, clean coverslip; uneven: vignetting, tilted "
        "illumination, dust and debris; media: cells in water, targets 8 um deep",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    n_mounts = 1 if args.quick else args.mounts
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pairscope-reloc-") as tmp:
        for seed in range(n_mounts):
            try:
                limits = (5.0, 300.0) if args.quick else (180.0, 1000.0)
                row = run_mount(Path(tmp), seed, *limits, suite=args.suite)
            except Exception as error:  # a failed mount is a result too
                failures.append(
                    {"seed": seed, "error": f"{type(error).__name__}: {error}"}
                )
                print(f"mount {seed:2d}: FAILED {failures[-1]['error']}", flush=True)
                continue
            rows.append(row)
            _write(rows, failures, args.quick, n_mounts, args.suite)  # if cut short
            print(
                f"mount {seed:2d}: lateral RMS {row['lateral_rms_um']:.3f} um "
                f"(max {row['lateral_max_um']:.3f}), axial RMS "
                f"{row['axial_rms_um']:.3f} um, predicted TRE "
                f"{row['predicted_tre_rms_um']:.3f} um, "
                f"{row['find_and_fit_s']}",
                flush=True,
            )
    summary = _write(rows, failures, args.quick, n_mounts, args.suite)
    print(json.dumps(summary, indent=2))
    print(f"wrote {results_path(args.quick, args.suite).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
