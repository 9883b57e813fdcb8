"""Render an acquisition plan as a table, for ``pairscope acquire --dry-run``."""

from __future__ import annotations

from rich.table import Table

from acquire.sequence.plan import AcquisitionPlan, format_bytes, format_duration

__all__ = ["describe_plan"]

_BYTES_PER_GB = 10**9


def describe_plan(plan: AcquisitionPlan) -> Table:
    """Render a plan as a table for ``--dry-run``.

    Parameters
    ----------
    plan : AcquisitionPlan
        The plan.

    Returns
    -------
    rich.table.Table
        Positions, tiles, channels, z planes, time points, frames, stacks,
        size in GB and estimated duration.

    """
    table = Table(title="Acquisition plan", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    sizes = plan.axis_sizes
    planes = sorted(set(plan.planes_per_stack.values()))
    per_stack = str(planes[0]) if len(planes) == 1 else f"{planes[0]} to {planes[-1]}"
    height_px, width_px = plan.frame_shape
    size_gb = plan.total_bytes / _BYTES_PER_GB
    size = f"{size_gb:,.2f} GB"
    if size_gb < 1:
        size += f" ({format_bytes(plan.total_bytes)})"
    rows = [
        ("Positions", str(sizes.get("p") or 1)),
        ("Grid tiles", str(sizes.get("g") or 1)),
        ("Channels", ", ".join(plan.channel_names) or "(current settings)"),
        ("Z planes", str(sizes.get("z") or 1)),
        ("Time points", str(sizes.get("t") or 1)),
        ("Frames", f"{plan.n_frames:,}"),
        ("Stacks", f"{len(plan.stacks):,} ({per_stack} frames each)"),
        ("Frame", f"{width_px} x {height_px} px, {plan.bytes_per_pixel} bytes/px"),
        ("Size", size),
        ("Estimated duration", format_duration(plan.estimated_duration_s)),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table
