"""``pairscope export``: the whole model as one TorchScript or ONNX file."""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 (typer reads annotations at run time)
from typing import Annotated

import typer

from acquire.cli.common import console, err_console, handle_errors, zyx_triple
from acquire.errors import UserError

__all__ = ["export_command"]

FORMAT_CHOICES = ("all", "torchscript", "onnx")


@handle_errors
def export_command(
    model: Annotated[Path, typer.Argument(help="Model file of `pairscope train`.")],
    shape: Annotated[
        str,
        typer.Option(
            "--shape",
            help="z,y,x of the stacks the exported model takes (model's voxel grid).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New export folder.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="all, torchscript or onnx."),
    ] = "all",
) -> None:
    """Export the whole model (normalisation to output) as TorchScript and/or ONNX.

    Every file is loaded back and checked against the model on a test stack
    before the folder appears; the folder also holds that stack, the expected
    output and export.json (shape, voxel size, training provenance).
    """
    from enhance.checkpoint import load_checkpoint
    from enhance.export import EXPORT_FORMATS, export_model

    if fmt not in FORMAT_CHOICES:
        raise UserError(
            f"--format {fmt!r} is not one of {', '.join(FORMAT_CHOICES)}",
            "Choose one of them.",
        )
    stack_shape = zyx_triple(shape, "--shape", "41,512,512")
    checkpoint = load_checkpoint(model)
    formats = EXPORT_FORMATS if fmt == "all" else (fmt,)
    err_console.print(
        f"exporting {model} for {stack_shape[0]} x {stack_shape[1]} x "
        f"{stack_shape[2]} stacks at {checkpoint.voxel_size_um} um",
        markup=False,
    )
    result = export_model(
        checkpoint,
        shape=stack_shape,
        out=out,
        formats=formats,  # type: ignore[arg-type]
    )
    for name, path in result.files.items():
        console.print(
            f"{name}: {path} (max difference {result.relative_difference[name]:.1e} "
            "of the output range)",
            markup=False,
        )
