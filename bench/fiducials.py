"""Fiducial mark detection on images pairscope did not render.

Every image comes from the independent renderer ``bench/fiducial_render.py``
(anti-aliased marks of the demo holder, Gaussian defocus, Poisson and read
noise, random sub-pixel centres and rotations, vignetting, a tilted
illumination field, low-frequency background, a linear background ramp, dust
and debris near the marks). The conditions form a full grid: pixel size
(0.65, 0.4, 0.1625, 0.1 um) x SNR (50, 15, 5) x blur (0.5, 1, 2, 3 px) x
ramp (0, 10, 30, 50 % of the mark's brightness across the field); the demo
holder's four marks take turns and half the images have debris, spread
like a Latin square; the full run visits every grid point twice.
Empty fields (background, illumination and debris only) come on top.

Each image goes through :func:`correlate.fiducials.detect.detect_marks` with the
demo holder and through a baseline, the centroid of the largest blob of the
Otsu-thresholded (lightly smoothed) image. Reported per condition: the
detection rate (an object within the mark's radius of the true centre), the
identity accuracy (detections with the right identity; wrong identities
counted apart), the centre error (RMS and max, um) of identified marks, and
the baseline's centre error on the same images.

Usage::

    python bench/fiducials.py [--quick] [--jobs N] [--out PATH]

writes ``bench/results/fiducials.json`` (``--quick``: ``fiducials_quick.json``,
a quarter of the grid, once) and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fiducial_render as fr

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "fiducials.json"

PIXEL_SIZES_UM = (0.65, 0.4, 0.1625, 0.1)
SNRS = (50.0, 15.0, 5.0)
BLURS_PX = (0.5, 1.0, 2.0, 3.0)
RAMPS = (0.0, 0.1, 0.3, 0.5)
FINE_PIXELS_UM = (0.1625, 0.1)
TARGET_CENTRE_RMS_UM = 0.05
MISS_KEYS = ("case", "mark", "pixel_size_um", "snr", "blur_px", "ramp", "debris")


def plan(quick: bool) -> list[dict[str, Any]]:
    """The cases of a run: mark images on the grid, then empty fields.

    Marks and debris are spread over the grid like a Latin square, so that
    neither goes with any one level of another condition; the full run
    visits every grid point twice (another mark, debris switched).
    """
    marks = fr.holder_marks()
    blurs = (1.0, 3.0) if quick else BLURS_PX
    ramps = (0.0, 0.5) if quick else RAMPS
    repeats = 1 if quick else 2
    cases: list[dict[str, Any]] = []
    for repeat in range(repeats):
        grid = itertools.product(
            enumerate(PIXEL_SIZES_UM), enumerate(SNRS), enumerate(blurs),
            enumerate(ramps),
        )  # fmt: skip
        for (ip, pixel), (i_snr, snr), (ib, blur), (ir, ramp) in grid:
            shape = (ip + i_snr + ib + ir + 2 * repeat) % len(marks)
            cases.append(
                {
                    "case": len(cases),
                    "mark": marks[shape].identity,
                    "pixel_size_um": pixel,
                    "snr": snr,
                    "blur_px": blur,
                    "ramp": ramp,
                    "debris": (i_snr + ib + ir + repeat) % 2 == 1,
                }
            )
    for _ in range(repeats):
        for pixel, snr, debris in itertools.product(
            PIXEL_SIZES_UM, SNRS, (False, True)
        ):
            cases.append(
                {
                    "case": len(cases),
                    "mark": None,
                    "pixel_size_um": pixel,
                    "snr": snr,
                    "blur_px": 1.0,
                    "ramp": 0.3,
                    "debris": debris,
                }
            )
    return cases


def baseline_centre(image: np.ndarray) -> tuple[float, float] | None:
    """Centroid of the largest blob of the Otsu-thresholded image."""
    smooth = ndi.gaussian_filter(image.astype(np.float64), 1.0)
    if float(np.ptp(smooth)) == 0.0:
        return None
    labels, n = ndi.label(
        smooth > threshold_otsu(smooth), structure=np.ones((3, 3), bool)
    )
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    row, col = ndi.center_of_mass(labels == int(np.argmax(sizes)))
    return float(row), float(col)


def run_case(case: dict[str, Any], detector: Callable[..., Any]) -> dict[str, Any]:
    """Render one case, detect, and compare with the truth."""
    from correlate.fiducials.marks import Holder

    marks = {m.identity: m for m in fr.holder_marks()}
    holder = Holder.from_dict(json.loads(fr.DEMO_HOLDER.read_text()))
    mark = marks[case["mark"]] if case["mark"] else None
    image, scene = fr.render_mark(
        mark,
        pixel_size_um=case["pixel_size_um"],
        snr=case["snr"],
        blur_px=case["blur_px"],
        ramp_fraction=case["ramp"],
        debris=case["debris"],
        seed=1000 + case["case"],
    )
    pixel = case["pixel_size_um"]
    started = time.perf_counter()
    try:
        found = detector(image, pixel_size_um=pixel, holder=holder)
        error = None
    except Exception as exc:  # a crash is a result
        found, error = (), f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        **case,
        "shape": mark.shape if mark else None,
        "seconds": round(seconds, 3),
        "error": error,
        "n_detections": len(found),
        "n_identified": sum(1 for d in found if d.identity),
    }
    truth = np.asarray(scene.centre_px)
    if mark is None:
        row["false_identified"] = row["n_identified"]
        return row
    radius_px = fr.shape_radius_um(mark.shape, mark.size_um) / pixel
    distances = [float(np.hypot(*(np.asarray(d.centre_px) - truth))) for d in found]
    nearest = int(np.argmin(distances)) if distances else -1
    hit = nearest >= 0 and distances[nearest] <= radius_px
    det = found[nearest] if hit else None
    row["found"] = bool(hit)
    row["identity"] = det.identity if det is not None else None
    row["identified"] = det is not None and det.identity == mark.identity
    row["wrong_identity"] = det is not None and det.identity not in ("", mark.identity)
    row["false_identified"] = sum(
        1 for k, d in enumerate(found) if d.identity and not (hit and k == nearest)
    )
    row["centre_error_um"] = distances[nearest] * pixel if hit else None
    base = baseline_centre(image)
    base_error = (
        float(np.hypot(*(np.asarray(base) - truth))) * pixel
        if base is not None
        else None
    )
    row["baseline_error_um"] = base_error
    row["baseline_found"] = base_error is not None and base_error <= radius_px * pixel
    return row


def _rms(values: Iterable[float]) -> float | None:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.sqrt(np.mean(v**2))) if v.size else None


def _max(values: Iterable[float]) -> float | None:
    v = list(values)
    return float(max(v)) if v else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection, identity and centre error over a group of mark images."""
    marks = [r for r in rows if r["mark"]]
    identified = [r for r in marks if r["identified"]]
    base = [r["baseline_error_um"] for r in marks if r["baseline_error_um"] is not None]
    # the baseline on the same images the detector identified
    paired = [
        r["baseline_error_um"] for r in identified if r["baseline_error_um"] is not None
    ]
    return {
        "images": len(marks),
        "detection_rate": (sum(r["found"] for r in marks) / len(marks))
        if marks
        else None,
        "identified_rate": (len(identified) / len(marks)) if marks else None,
        "wrong_identity": sum(r["wrong_identity"] for r in marks),
        "false_identified": sum(r["false_identified"] for r in marks),
        "crashes": sum(r["error"] is not None for r in marks),
        "centre_rms_um": _rms(r["centre_error_um"] for r in identified),
        "centre_max_um": _max(r["centre_error_um"] for r in identified),
        "baseline_rms_um": _rms(base),
        "baseline_max_um": _max(base),
        "baseline_rms_same_images_um": _rms(paired),
        "baseline_found_rate": (sum(r["baseline_found"] for r in marks) / len(marks))
        if marks
        else None,
    }


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-condition summaries, the targets, and the empty fields."""
    marks = [r for r in rows if r["mark"]]
    empty = [r for r in rows if not r["mark"]]
    by: dict[str, dict[str, Any]] = {}
    for key in ("pixel_size_um", "snr", "blur_px", "ramp", "shape", "debris"):
        levels = sorted({r[key] for r in marks}, key=str)
        by[key] = {
            str(level): summarise([r for r in marks if r[key] == level])
            for level in levels
        }
    bright = [r for r in marks if r["snr"] >= 15]
    fine = [
        r
        for r in bright
        if r["pixel_size_um"] in FINE_PIXELS_UM and r["blur_px"] <= 2.0
    ]
    fine_by_shape = {
        str(shape): summarise([r for r in fine if r["shape"] == shape])
        for shape in sorted({r["shape"] for r in fine})
    }
    fine_summary = summarise(fine)
    targets = {
        "snr_ge_15_all_found_and_identified": all(r["identified"] for r in bright),
        "snr_ge_15_missed": [
            {k: r[k] for k in MISS_KEYS} for r in bright if not r["identified"]
        ],
        "empty_fields_false_identified": sum(r["false_identified"] for r in empty),
        "fine_centre_rms_um": fine_summary["centre_rms_um"],
        "fine_centre_target_um": TARGET_CENTRE_RMS_UM,
        "fine_centre_met": (fine_summary["centre_rms_um"] or math.inf)
        <= TARGET_CENTRE_RMS_UM,
        "fine_beats_baseline_on_every_shape": all(
            (s["centre_rms_um"] or math.inf) < (s["baseline_rms_same_images_um"] or 0)
            for s in fine_by_shape.values()
        ),
    }
    return {
        "overall": summarise(marks),
        "by_condition": by,
        "fine_snr_ge_15_blur_le_2": {"all": fine_summary, "by_shape": fine_by_shape},
        "empty_fields": {
            "images": len(empty),
            "false_identified": sum(r["false_identified"] for r in empty),
            "any_detection": sum(r["n_detections"] > 0 for r in empty),
            "crashes": sum(r["error"] is not None for r in empty),
        },
        "targets": targets,
        "mean_seconds_per_image": float(np.mean([r["seconds"] for r in rows])),
    }


def _detect(image: np.ndarray, **kwargs: Any) -> Any:
    from correlate.fiducials.detect import detect_marks

    return detect_marks(image, **kwargs)


def _run(case: dict[str, Any]) -> dict[str, Any]:
    return run_case(case, _detect)


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(summary: dict[str, Any]) -> None:
    """The per-condition table."""
    print(
        f"{'condition':>22} {'n':>4} {'found':>6} {'ident':>6} {'wrong':>5} "
        f"{'rms um':>7} {'max um':>7} {'base rms':>8} {'base max':>8} "
        f"{'base same':>9}"
    )
    groups = [("all", summary["overall"])]
    for key, levels in summary["by_condition"].items():
        groups += [(f"{key}={level}", s) for level, s in levels.items()]
    fine = summary["fine_snr_ge_15_blur_le_2"]
    groups.append(("fine,SNR>=15,blur<=2", fine["all"]))
    groups += [(f"  fine {k}", s) for k, s in fine["by_shape"].items()]
    for name, s in groups:
        print(
            f"{name:>22} {s['images']:>4} {_fmt(s['detection_rate'], '.2f'):>6} "
            f"{_fmt(s['identified_rate'], '.2f'):>6} {s['wrong_identity']:>5} "
            f"{_fmt(s['centre_rms_um']):>7} {_fmt(s['centre_max_um']):>7} "
            f"{_fmt(s['baseline_rms_um']):>8} {_fmt(s['baseline_max_um']):>8} "
            f"{_fmt(s['baseline_rms_same_images_um']):>9}"
        )
    print("empty fields:", summary["empty_fields"])
    print("targets:", json.dumps(summary["targets"], indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a quarter of the grid")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="results file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases = plan(args.quick)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(_run, cases, chunksize=4))
    summary = report(rows)
    results = {
        "benchmark": "fiducials",
        "renderer": "bench/fiducial_render.py (independent of acquire.sim)",
        "baseline": "centroid of the largest blob of the Otsu-thresholded image "
        "(Gaussian smoothing of 1 px first)",
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "run_wall_s": round(time.perf_counter() - started, 1),
        "summary": summary,
        "cases": rows,
    }
    path = args.out or (
        RESULTS.with_name("fiducials_quick.json") if args.quick else RESULTS
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print_table(summary)
    print(f"wrote {path} in {results['run_wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
