"""Writing an evaluation: ``report.json``, ``report.md`` and ``comparison.png``.

`enhance.evaluation.evaluate` scores; this module turns its payload (plain
JSON values) into the files. ``comparison.png`` shows one pair: XY slice at
the middle plane and XZ slice at the middle row, columns raw WF | RL | model |
confocal, all intensity-matched to the confocal and shown with the
confocal's 0.5 to 99.8 percentile display range; XZ stretched to square
voxels.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from correlate.json_values import plain_json
from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

__all__ = [
    "LABELS",
    "LINEAR_FILTER",
    "comparison_figure",
    "report_markdown",
    "write_report",
]

LINEAR_FILTER = "linear_filter"
"""Extra method scored for a two-channel model: its learned linear filter
alone (what the U-Net starts from), to show what the network adds."""
LABELS = {
    "widefield": "raw WF",
    "richardson_lucy": "RL",
    "model": "model",
    LINEAR_FILTER: "linear filter (model's first stage)",
    "confocal": "confocal",
}


def write_report(out: Path, payload: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.json`` (non-finite numbers as null) and ``report.md``.

    Parameters
    ----------
    out : Path
        The report folder.
    payload : dict
        The evaluation (see `enhance.evaluation.evaluate`).

    Returns
    -------
    tuple of Path
        The JSON and Markdown files.

    """
    clean = plain_json(
        payload, where="the evaluation report", non_finite="null", error=EnhanceError
    )
    report_json = out / "report.json"
    report_json.write_text(
        json.dumps(clean, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    report_md = out / "report.md"
    report_md.write_text(report_markdown(clean), encoding="utf-8")
    return report_json, report_md


def _to_uint8(image: NDArray[np.float64], low: float, high: float) -> NDArray[np.uint8]:
    scaled = (image - low) / max(high - low, 1e-12)
    return np.asarray(np.clip(scaled, 0, 1) * 255 + 0.5, dtype=np.uint8)


def comparison_figure(
    stacks: dict[str, NDArray[np.float64]],
    voxel_size_um: tuple[float, float, float],
    path: Path,
) -> None:
    """Write the side-by-side PNG of one pair (see module notes).

    Parameters
    ----------
    stacks : dict of str to ndarray
        ``widefield``, ``richardson_lucy``, ``model`` and ``confocal`` stacks
        (z, y, x), intensity-matched to the confocal.
    voxel_size_um : tuple of 3 floats
        (dz, dy, dx), for the XZ stretch.
    path : Path
        The PNG file.

    """
    confocal = stacks["confocal"]
    low, high = np.percentile(confocal, [0.5, 99.8]).tolist()
    nz, ny, nx = confocal.shape
    stretch = voxel_size_um[0] / voxel_size_um[2]
    xz_height = max(1, round(nz * stretch))
    label_h, gap = 14, 4
    panel_w = nx
    width = 4 * panel_w + 3 * gap
    height = label_h + ny + gap + xz_height
    canvas = Image.new("L", (width, height), color=0)
    draw = ImageDraw.Draw(canvas)
    for column, name in enumerate(
        ("widefield", "richardson_lucy", "model", "confocal")
    ):
        left = column * (panel_w + gap)
        stack = stacks[name]
        xy = Image.fromarray(_to_uint8(stack[nz // 2], low, high))
        xz = Image.fromarray(_to_uint8(stack[:, ny // 2, :], low, high)).resize(
            (nx, xz_height), Image.Resampling.BILINEAR
        )
        canvas.paste(xy, (left, label_h))
        canvas.paste(xz, (left, label_h + ny + gap))
        draw.text((left + 2, 1), LABELS[name], fill=255)
    canvas.save(path, format="PNG")


def report_markdown(report: dict[str, Any]) -> str:
    """The Markdown tables of an evaluation payload (mean, then per pair)."""

    def row(label: str, m: dict[str, float | None]) -> str:
        cells = [
            f"{v:.3f}" if isinstance(v, float) else "inf"
            for v in (m["psnr_db"], m["ssim"], m["nrmse"], m["pearson_r"])
        ]
        return f"| {label} | " + " | ".join(cells) + " |"

    header = "| method | PSNR (dB) | SSIM | NRMSE | Pearson r |\n|---|---|---|---|---|"
    ck, optics = report["checkpoint"], report["optics"]
    lines = [
        "# Enhancement evaluation",
        "",
        f"Model trained on {len(ck['provenance']['train_pair_ids'])} pairs "
        f"(catalog sha256 {ck['provenance']['catalog_sha256']}), "
        f"voxel size {ck['voxel_size_um']} um, "
        f"pairscope {ck['software_version']}.",
        f"Test pairs: {len(report['pairs'])}. "
        f"Richardson-Lucy: {report['rl_iterations']} "
        f"iterations, PSF NA {optics['numerical_aperture']}, "
        f"n {optics['immersion_index']}, "
        f"emission {optics['emission_wavelength_um']} um.",
        "Every stack is affinely matched (least squares) to the confocal before "
        "scoring; data range = confocal max - min. "
        f"Scored: {report['scored_region']}.",
        "",
        "## Mean over test pairs",
        "",
        header,
        *(row(LABELS[m], report["mean"][m]) for m in report["methods"]),
        "",
        "## Per pair",
        "",
    ]
    for pair in report["pairs"]:
        lines += [f"### {pair['pair_id']} (cell {pair['cell_id']})", "", header]
        lines += [row(LABELS[m], pair["metrics"][m]) for m in report["methods"]]
        lines.append("")
    lines.append(f"Model throughput: {report['model_voxels_per_s']:.3g} voxels/s.")
    return "\n".join(lines) + "\n"
