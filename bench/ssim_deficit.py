"""Where a model's SSIM deficit against the confocal lies (issue #6's open point).

For each test pair (central ``--crop-yx`` pixels, all planes, outputs affinely
matched to the confocal as :mod:`enhance.metrics` does):

1. SSIM split into its two factors, over 7-voxel windows with the evaluation's
   constants (data range = confocal max - min): ``1 - luminance`` (the local
   means disagree) and ``1 - contrast-structure``.
2. Faint windows: those whose confocal local mean is 0.5-2 % of the confocal
   maximum (the diffuse cell body). Their share of the summed ``1 - SSIM``, and
   the model's local mean there as a fraction of the confocal's.
3. Oracle low-pass swaps: the model's Gaussian low-pass (sigma in voxels,
   (z, y, x)) replaced by the confocal's, and by Richardson-Lucy's. How much
   SSIM a perfect (or an RL-informed) coarse-scale correction could give.

Usage::

    python bench/make_training_db.py DB
    python bench/ssim_deficit.py DB [--model PATH] [--pairs 5] [--rl-iterations 160]

Prints a table and writes ``bench/results/ssim_deficit.json``.
``--rl-iterations 0`` skips Richardson-Lucy (about 1 min per pair on CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

if TYPE_CHECKING:
    from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = ROOT / "enhance" / "models" / "demo_widefield_to_confocal.pt"
RESULTS = ROOT / "bench" / "results" / "ssim_deficit.json"
WINDOW = 7
FAINT_FRACTION = (0.005, 0.02)
SIGMAS = ((1.0, 4.0, 4.0), (2.0, 8.0, 8.0), (4.0, 16.0, 16.0))


def ssim_factors(
    prediction: NDArray[np.float64], target: NDArray[np.float64]
) -> dict[str, Any]:
    """Luminance and contrast-structure losses, and the faint windows' part."""
    data_range = float(target.max() - target.min())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    half = WINDOW // 2
    inner = (slice(half, -half),) * 3

    def local_mean(a: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = uniform_filter(a, WINDOW)[inner]
        return result

    mt, mp = local_mean(target), local_mean(prediction)
    var_t = local_mean(target * target) - mt * mt
    var_p = local_mean(prediction * prediction) - mp * mp
    cov = local_mean(target * prediction) - mt * mp
    luminance = (2 * mt * mp + c1) / (mt * mt + mp * mp + c1)
    contrast_structure = (2 * cov + c2) / (var_t + var_p + c2)
    loss = 1 - luminance * contrast_structure
    low, high = (f * float(target.max()) for f in FAINT_FRACTION)
    faint = (mt >= low) & (mt < high)
    return {
        "luminance_loss": float((1 - luminance).mean()),
        "contrast_structure_loss": float((1 - contrast_structure).mean()),
        "faint_window_fraction": float(faint.mean()),
        "faint_share_of_deficit": float(loss[faint].sum() / loss.sum()),
        "faint_level_vs_confocal": float(mp[faint].mean() / mt[faint].mean()),
    }


def lowpass_swap_ssim(
    prediction: NDArray[np.float64],
    source: NDArray[np.float64],
    target: NDArray[np.float64],
) -> dict[str, float]:
    """SSIM after replacing the prediction's low-pass with ``source``'s, per sigma."""
    from enhance.metrics import image_metrics

    return {
        ",".join(f"{s:g}" for s in sigma): image_metrics(
            prediction
            - gaussian_filter(prediction, sigma)
            + gaussian_filter(source, sigma),
            target,
        ).ssim
        for sigma in SIGMAS
    }


def analyse_pair(pair: Any, enhancer: Any, rl_iterations: int) -> dict[str, Any]:
    """All measurements of one (cropped) pair."""
    from enhance.deconvolution import richardson_lucy
    from enhance.metrics import image_metrics, match_intensity
    from enhance.psf import WidefieldOptics, default_psf_shape, widefield_psf

    target = np.asarray(pair.confocal, dtype=np.float64)
    raw = enhancer.predict(pair.widefield, voxel_size_um=pair.voxel_size_um).image
    model = match_intensity(raw, target)
    row: dict[str, Any] = {
        "pair_id": pair.pair_id,
        "model": image_metrics(model, target).to_dict(),
        "model_factors": ssim_factors(model, target),
        "model_lowpass_from_confocal": lowpass_swap_ssim(model, target, target),
    }
    if rl_iterations > 0:
        optics = WidefieldOptics()
        shape = default_psf_shape(pair.widefield.shape, pair.voxel_size_um, optics)
        psf = widefield_psf(optics, voxel_size_um=pair.voxel_size_um, shape=shape)
        background = float(np.percentile(pair.widefield, 1.0))
        rl = match_intensity(
            richardson_lucy(
                pair.widefield, psf, iterations=rl_iterations, background=background
            ),
            target,
        )
        row["richardson_lucy"] = image_metrics(rl, target).to_dict()
        row["richardson_lucy_factors"] = ssim_factors(rl, target)
        row["model_lowpass_from_richardson_lucy"] = lowpass_swap_ssim(model, rl, target)
    return row


def _mean(rows: list[dict[str, Any]], *keys: str) -> float | None:
    values = []
    for row in rows:
        value: Any = row
        for key in keys:
            if key not in value:
                return None
            value = value[key]
        values.append(float(value))
    return float(np.mean(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path, help="paired-image database folder")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--pairs", type=int, default=5, help="first N test pairs")
    parser.add_argument("--crop-yx", type=int, default=256)
    parser.add_argument("--rl-iterations", type=int, default=160)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from correlate.pairdb import PairDatabase
    from correlate.pairdb.errors import PairDatabaseError
    from enhance.data import crop_yx, trim_to_overlap
    from enhance.database_pairs import load_split
    from enhance.errors import EnhanceError
    from enhance.predict import Enhancer

    try:
        database = PairDatabase.open(args.database)
        pairs = [
            crop_yx(trim_to_overlap(p), args.crop_yx)
            for p in load_split(database, "test", limit=args.pairs)
        ]
        enhancer = Enhancer(args.model)
    except (PairDatabaseError, EnhanceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = []
    print(
        f"{'pair':18} {'SSIM':>6} {'lum':>6} {'c-s':>6} {'faint share':>11} "
        f"{'faint level':>11}"
    )
    for pair in pairs:
        row = analyse_pair(pair, enhancer, args.rl_iterations)
        f = row["model_factors"]
        print(
            f"{row['pair_id']:18} {row['model']['ssim']:6.3f} "
            f"{f['luminance_loss']:6.3f} {f['contrast_structure_loss']:6.3f} "
            f"{f['faint_share_of_deficit']:11.2f} {f['faint_level_vs_confocal']:11.2f}",
            flush=True,
        )
        rows.append(row)
    summary = {
        "model_ssim": _mean(rows, "model", "ssim"),
        "richardson_lucy_ssim": _mean(rows, "richardson_lucy", "ssim"),
        "model_lowpass_from_confocal": {
            k: _mean(rows, "model_lowpass_from_confocal", k)
            for k in rows[0]["model_lowpass_from_confocal"]
        },
        "model_lowpass_from_richardson_lucy": (
            {
                k: _mean(rows, "model_lowpass_from_richardson_lucy", k)
                for k in rows[0]["model_lowpass_from_richardson_lucy"]
            }
            if args.rl_iterations > 0
            else None
        ),
    }
    rl_ssim = summary["richardson_lucy_ssim"]
    print(
        f"mean SSIM: model {summary['model_ssim']:.4f}",
        "| Richardson-Lucy " + ("skipped" if rl_ssim is None else f"{rl_ssim:.4f}"),
    )
    print(
        "model with the confocal's low-pass (sigma z,y,x):",
        summary["model_lowpass_from_confocal"],
    )
    print("model with RL's low-pass:", summary["model_lowpass_from_richardson_lucy"])
    results = {
        "model": str(args.model.resolve().relative_to(ROOT))
        if args.model.resolve().is_relative_to(ROOT)
        else str(args.model),
        "database": str(args.database),
        "crop_yx": args.crop_yx,
        "rl_iterations": args.rl_iterations,
        "window_voxels": WINDOW,
        "faint_fraction_of_confocal_max": list(FAINT_FRACTION),
        "summary": summary,
        "pairs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
