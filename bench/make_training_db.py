"""Build a paired-image database from simulated wide-field/confocal pairs.

Each pair goes through the same steps as the live pipeline
(:class:`acquire.workflows.pairing.Pairer`): the project's simulated scopes take a
confocal stack and its wide-field partner (:func:`acquire.sim.pairs.simulate_pair`,
40x/1.3 oil wide-field objective, a random mount, noise and residual camera
rotation per seed), :func:`correlate.registration.register_pair` registers them
from relocation's initial estimate, and the aligned wide-field stack, the
confocal stack, the transform, the quality metrics and the accept/reject
decision go into the database with :meth:`PairDatabase.add_pair`.

Cells: the demo specimen (``SpecimenSeed`` 1 of the bundled demo configs)
holds 40 cells. Pair ``i`` looks at cell ``cells[i]`` (every cell at most once
by default), so the database's split by cell id keeps every test cell out of
training. The mount, noise, stack offset and camera rotation come from the
pair's seed ``base_seed + i``.

Usage::

    python bench/make_training_db.py OUT_DB [--pairs 40] [--field-px 512]
        [--planes 41] [--base-seed 6000]

The demo geometry is 41 planes x 512 x 512 px at (0.25, 0.1, 0.1) um (the
confocal grid). About 10 s per pair on one core.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from acquire.sim.pairs import (
    CONFOCAL_OBJECTIVE,
    WIDEFIELD_OBJECTIVES,
    SimulatedPair,
    simulate_pair,
)
from correlate.pairdb import PairDatabase, StackMeta
from correlate.registration import register_pair

N_SPECIMEN_CELLS = 40
SPECIMEN_SEED = 1
SPLIT_FRACTIONS = (0.65, 0.15, 0.2)
"""(train, val, test): with the 40 demo cell ids this gives 22/9/9 cells
(the default 0.7/0.15/0.15 leaves only 3 of them in test)."""
WIDEFIELD_SCOPE = "simulated Axio Observer Z1 + ORCA (demo_widefield.cfg)"
CONFOCAL_SCOPE = "simulated LSM 710 (demo_confocal.cfg)"


def cell_id(cell_index: int) -> str:
    """The database cell id of a cell of the demo specimen."""
    return f"specimen{SPECIMEN_SEED}-cell{cell_index:02d}"


def add_simulated_pair(
    database: PairDatabase, pair: SimulatedPair, *, seed: int
) -> tuple[str, bool, str]:
    """Register one simulated pair and store it; returns (pair id, accepted, reason)."""
    wf, cf = pair.widefield, pair.confocal
    result = register_pair(
        wf.data,
        cf.data,
        widefield_voxel_um=wf.voxel_um,
        confocal_voxel_um=cf.voxel_um,
        initial=pair.initial,
    )
    metrics = {
        k: math.nan if v is None else float(v)
        for k, v in result.quality.to_dict().items()
    }
    metrics["overlap"] = metrics["overlap_fraction"]
    metrics["rotation_deg"] = result.rotation_deg
    metrics["scale"] = result.scale
    source = f"acquire.sim.pairs.simulate_pair(seed={seed})"
    pair_id = database.add_pair(
        widefield=result.aligned_widefield,
        confocal=result.confocal,
        voxel_size_um=cf.voxel_um,
        cell_id=cell_id(pair.cell_index),
        transform={
            "registered": result.transform.to_dict(),
            "initial": pair.initial.to_dict(),
            "truth": pair.truth.to_dict(),
        },
        metrics=metrics,
        accepted=result.accepted,
        reason=result.reason,
        widefield_meta=StackMeta(
            scope=WIDEFIELD_SCOPE,
            objective=WIDEFIELD_OBJECTIVES["40x"],
            stage_xyz_um=wf.stage_um,
            voxel_size_um=wf.voxel_um,
            acquired_at=None,
            source=source,
        ),
        confocal_meta=StackMeta(
            scope=CONFOCAL_SCOPE,
            objective=CONFOCAL_OBJECTIVE,
            stage_xyz_um=cf.stage_um,
            voxel_size_um=cf.voxel_um,
            acquired_at=None,
            source=source,
        ),
    )
    return pair_id, result.accepted, result.reason


def build(
    out: Path,
    *,
    n_pairs: int,
    field_px: int,
    n_planes: int,
    base_seed: int,
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
) -> PairDatabase:
    """Create the database at ``out`` and fill it with ``n_pairs`` simulated pairs."""
    database = PairDatabase.create(out, split_fractions=split_fractions)
    cells = np.arange(n_pairs) % N_SPECIMEN_CELLS
    for i, cell in enumerate(cells):
        seed = base_seed + i
        started = time.perf_counter()
        pair = simulate_pair(
            seed,
            widefield_objective="40x",
            n_planes=n_planes,
            z_step_um=0.25,
            cell=int(cell),
            field_px=field_px,
        )
        pair_id, accepted, reason = add_simulated_pair(database, pair, seed=seed)
        print(
            f"[{i + 1}/{n_pairs}] seed {seed} {cell_id(int(cell))} pair {pair_id} "
            f"{'accepted' if accepted else 'REJECTED'} ({reason}) "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return database


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="new database folder")
    parser.add_argument("--pairs", type=int, default=N_SPECIMEN_CELLS)
    parser.add_argument("--field-px", type=int, default=512)
    parser.add_argument("--planes", type=int, default=41)
    parser.add_argument("--base-seed", type=int, default=6000)
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; choose a new folder", file=sys.stderr)
        return 2
    database = build(
        args.out,
        n_pairs=args.pairs,
        field_px=args.field_px,
        n_planes=args.planes,
        base_seed=args.base_seed,
    )
    for split in ("train", "val", "test"):
        records = database.records(split)
        cells = sorted({r.cell_id for r in records})
        print(f"{split}: {len(records)} accepted pairs, cells {', '.join(cells)}")
    print(f"catalog sha256 {database.catalog_sha256()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
