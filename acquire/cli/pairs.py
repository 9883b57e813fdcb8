"""``pairscope pairs``: build, list and show the paired-image database."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich import box
from rich.table import Table

from acquire.cli.common import (
    ConfigOption,
    console,
    err_console,
    flag,
    handle_errors,
)
from acquire.errors import UserError
from acquire.paths import check_new_file, check_output_folder
from correlate.pairdb import SPLITS

if TYPE_CHECKING:
    from acquire.workflows.pairing import PairOutcome

__all__ = ["pairs_app"]

pairs_app = typer.Typer(
    help="The paired-image database: acquire and build pairs, list, show.",
    no_args_is_help=True,
)


def _predicted(metrics: Mapping[str, float]) -> str:
    """The registration's predicted error (lateral px / axial um, RMS)."""
    lateral = metrics.get("predicted_lateral_rms_px", math.nan)
    axial = metrics.get("predicted_axial_rms_um", math.nan)
    return f"{lateral:.2f}/{axial:.2f}"


def _outcome_line(outcome: PairOutcome) -> str:
    state = "paired" if outcome.accepted else "FLAGGED"
    ncc = outcome.metrics.get("ncc", math.nan)
    why = "" if outcome.accepted else f": {outcome.reason}"
    return (
        f"{outcome.position_name}: {state} (NCC {ncc:.3f}, started "
        f"{outcome.start_offset_um:.2f} um off){why}"
    )


def print_outcomes(outcomes: list[PairOutcome]) -> None:
    """The pairs table and the closed-loop summary."""
    table = Table(title="pairs", box=box.SIMPLE_HEAD)
    for column in (
        "position",
        "pair",
        "state",
        "NCC",
        "error px/um",
        "started off um",
        "why",
    ):
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            o.position_name,
            o.pair_id or "",
            "paired" if o.accepted else "FLAGGED",
            f"{o.metrics.get('ncc', math.nan):.3f}",
            _predicted(o.metrics),
            f"{o.start_offset_um:.2f}",
            "" if o.accepted else o.reason,
        )
    console.print(table)
    starts = [o.start_offset_um for o in outcomes if o.accepted]
    if len(starts) >= 4:
        half = len(starts) // 2
        console.print(
            "closed loop: stacks started "
            f"{np.sqrt(np.mean(np.square(starts[:half]))):.2f} um RMS off in the "
            f"first half, {np.sqrt(np.mean(np.square(starts[half:]))):.2f} um in "
            "the second",
            markup=False,
        )


@pairs_app.command("acquire")
@handle_errors
def acquire_pairs(
    session: Annotated[
        Path, typer.Argument(help="Session from `pairscope fiducials`.")
    ],
    confocal: Annotated[
        Path, typer.Option("--confocal", help="Scope A's dataset at the targets.")
    ],
    config: ConfigOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="New wide-field dataset.")],
    database: Annotated[
        Path, typer.Option("--db", help="Paired database (created if missing).")
    ],
    objective: Annotated[
        str | None, typer.Option("--objective", help="Acquisition objective label.")
    ] = None,
    search_objective: Annotated[
        str | None, typer.Option("--search-objective", help="Mark search objective.")
    ] = None,
    closed_loop: Annotated[
        bool,
        flag(
            "--closed-loop/--open-loop",
            help="Correct later positions with the registrations so far.",
        ),
    ] = True,
    wait_for_registration: Annotated[
        bool,
        flag(
            "--wait-for-registration",
            help="Before each stack, wait for the registrations before it.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        flag(
            "--resume",
            help="Complete an interrupted run in --out: pair its stacks that have "
            "no pair yet, acquire those it did not commit.",
        ),
    ] = False,
) -> None:
    """Relocate, acquire at every target, register each stack as it completes.

    Interrupted (a crash, a kill, a device fault)? Run the same command with
    --resume: nothing done is redone.
    """
    from acquire.workflows.paired_run import PairedRunRequest, run_paired_acquisition

    if not resume:
        check_output_folder(out)
    result = run_paired_acquisition(
        PairedRunRequest(
            session=session,
            confocal_dataset=confocal,
            config=config,
            out=out,
            database=database,
            objective=objective,
            search_objective=search_objective,
            closed_loop=closed_loop,
            wait_for_registration=wait_for_registration,
            resume=resume,
        ),
        progress=lambda line: err_console.print(line, markup=False),
        on_outcome=lambda o: err_console.print(_outcome_line(o), markup=False),
    )
    print_outcomes(result.outcomes)
    acquisition = result.acquisition
    new = [o for o in result.outcomes if not o.already_stored]
    stored_before = len(result.skipped) + len(result.outcomes) - len(new)
    console.print(
        f"acquisition {acquisition.status}: {acquisition.stacks_committed} stacks, "
        f"{len(result.outcomes)} registered, "
        f"{sum(o.accepted for o in new)} paired, "
        f"{stored_before} already in the database, "
        f"{result.registration_failures} failed; database {database}",
        markup=False,
    )
    if acquisition.status != "complete":
        raise UserError(
            f"the acquisition ended {acquisition.status}: {acquisition.failure}",
            f"Pairs so far are in {database}; fix the cause and run the same "
            "command with --resume.",
        )


@pairs_app.command("build")
@handle_errors
def build_pairs(
    widefield: Annotated[
        Path, typer.Option("--widefield", help="Dataset of `pairs acquire`.")
    ],
    database: Annotated[Path, typer.Option("--db", help="Paired database.")],
    confocal: Annotated[
        Path | None,
        typer.Option("--confocal", help="Scope A dataset (default: as recorded)."),
    ] = None,
    confocal_tiff: Annotated[
        list[Path] | None,
        typer.Option(
            "--confocal-tiff",
            help="Confocal OME-TIFF stacks acquired elsewhere (e.g. ZEN exports).",
        ),
    ] = None,
) -> None:
    """Pair stacks already acquired: from the datasets, or with imported files."""
    from acquire.workflows.pair_build import build_pairs_offline

    outcomes = build_pairs_offline(
        widefield,
        database,
        confocal_dataset=confocal,
        confocal_tiffs=tuple(confocal_tiff or ()),
        progress=lambda line: err_console.print(line, markup=False),
    )
    print_outcomes(outcomes)


@pairs_app.command("list")
@handle_errors
def list_pairs(
    database: Annotated[Path, typer.Argument(help="Paired database folder.")],
    split: Annotated[
        str | None, typer.Option("--split", help=f"One of {', '.join(SPLITS)}.")
    ] = None,
    everything: Annotated[
        bool, flag("--all", help="Include flagged (rejected) pairs.")
    ] = False,
) -> None:
    """List the pairs: cell, split, quality, scopes and objectives."""
    from correlate.pairdb import PairDatabase

    db = PairDatabase.open(database)
    records = db.records(split, accepted_only=not everything)
    table = Table(title=f"{database} ({len(records)} pairs)", box=box.SIMPLE_HEAD)
    # a pair id is what a user copies: never wrapped or cut
    table.add_column("pair", no_wrap=True, min_width=16)
    for column in ("cell", "split", "ok", "NCC", "error px/um", "overlap"):
        table.add_column(column)
    table.add_column("objectives", overflow="fold")
    for r in records:
        table.add_row(
            r.pair_id,
            r.cell_id,
            r.split,
            "yes" if r.accepted else "no",
            f"{r.metrics.get('ncc', math.nan):.3f}",
            _predicted(r.metrics),
            f"{r.metrics.get('overlap', math.nan):.2f}",
            f"{r.widefield.objective or '?'} / {r.confocal.objective or '?'}",
        )
    console.print(table)


@pairs_app.command("show")
@handle_errors
def show_pair(
    database: Annotated[Path, typer.Argument(help="Paired database folder.")],
    pair_id: Annotated[str, typer.Argument(help="Pair id (see `pairs list`).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG file (default: ID.png).")
    ] = None,
) -> None:
    """Write a PNG montage of an aligned pair, XY and XZ."""
    target = check_new_file(Path(out or f"{pair_id}.png"), what="PNG file")
    from correlate.pairdb import PairDatabase

    written = PairDatabase.open(database).write_montage(pair_id, target)
    console.print(f"wrote {written}", markup=False)
