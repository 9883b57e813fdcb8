"""What every ``pairscope`` subcommand shares: consoles and error handling.

User errors (a broken configuration, a bad path, an existing output, a bad
option value, a damaged database or checkpoint) print one message to stderr
and exit with code 2; unexpected failures print one line and exit with code 1.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from acquire.config.bundled import resolve_config_path
from acquire.errors import UserError, user_error_types

__all__ = [
    "AdapterOption",
    "ConfigOption",
    "console",
    "err_console",
    "fail",
    "flag",
    "handle_errors",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Micro-Manager configuration file (.cfg), e.g. "
        "hardware_configs/demo_widefield.cfg (the shipped demo configurations "
        "are found by name from any folder).",
        callback=resolve_config_path,
    ),
]
AdapterOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--adapter-path",
        help="Folder with Micro-Manager adapter libraries (repeatable). Default: "
        "the Micro-Manager installation (MICROMANAGER_PATH) and mm-test-adapters.",
        envvar="PAIRSCOPE_ADAPTER_PATH",
    ),
]


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as the one error line and return the exit to raise."""
    err_console.print(f"pairscope: error: {message}", soft_wrap=True, markup=False)
    return typer.Exit(code)


def flag(*param_decls: str, **options: Any) -> Any:
    """A boolean option shown in ``--help`` as the switch it is.

    Typer marks flags ``<bool>`` there, which reads as a value to type
    (``--resume true``, refused); a flag takes none.
    """
    return typer.Option(*param_decls, metavar="", **options)


def zyx_triple(text: str, option: str, example: str) -> tuple[int, int, int]:
    """Three positive integers ``z,y,x`` from an option's text.

    Raises
    ------
    UserError
        Anything else, with ``example`` in the hint.

    """
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise UserError(
            f"{option} {text!r} is not three positive integers",
            f"Write it as z,y,x, e.g. {option} {example}.",
        )
    return (values[0], values[1], values[2])


def handle_errors(func: F) -> F:
    """Turn user errors into exit code 2 and crashes into exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            if isinstance(exc, user_error_types()):
                raise fail(str(exc), 2) from None
            detail = " ".join(str(exc).split()) or "no details"
            raise fail(f"{type(exc).__name__}: {detail}", 1) from None
        finally:
            gc.collect()

    return wrapper  # type: ignore[return-value]
