"""Inference engines: what runs a network on a batch of tiles.

`enhance.predict.Enhancer` tiles, normalises and blends; an engine only maps
a float32 batch ``(n, channels, z, y, x)`` to ``(n, 1, z, y, x)``. Two exist:

``torch``
    the network itself (CPU on channels-last tensors, CUDA with fp16
    autocast, MPS);
``onnxruntime``
    the network exported to ONNX in memory when the model is loaded
    (TorchScript exporter, opset 17, every batch and spatial axis dynamic)
    and run by ONNX Runtime (its CUDA provider when the device is CUDA and
    the provider is installed, else the CPU one); the outputs agree with
    torch's within 1e-4 relative (``tests/enhance/test_engines.py``).

``auto`` picks torch: on 2 CPU cores, channels-last torch runs the demo U-Net
1.8 to 2.1x as fast as the contiguous torch path before it, and 1.1 to 1.4x
as fast as ONNX Runtime (two runs of ``bench/engines.py``; the last in
``bench/results/engines.json``).
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import numpy as np
import torch

from enhance.device import place_model, to_device
from enhance.errors import EnhanceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "ENGINES",
    "EngineName",
    "InferenceEngine",
    "OnnxRuntimeEngine",
    "TorchEngine",
    "make_engine",
    "resolve_engine",
]

EngineName = Literal["auto", "torch", "onnxruntime"]
ENGINES: tuple[str, ...] = get_args(EngineName)
_OPSET = 17


class InferenceEngine(Protocol):
    """Runs one network on a batch of tiles."""

    name: str

    def run(self, batch: NDArray[np.float32], *, amp: bool) -> NDArray[np.float32]:
        """``(n, channels, z, y, x)`` in, ``(n, 1, z, y, x)`` out (float32)."""
        ...


class TorchEngine:
    """The network itself, on its device.

    Parameters
    ----------
    model : torch.nn.Module
        The network, in eval mode, on ``device``.
    device : torch.device
        Where it runs.

    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = place_model(model, device)
        self.device = device

    def run(self, batch: NDArray[np.float32], *, amp: bool) -> NDArray[np.float32]:
        """See `InferenceEngine.run`; ``amp``: fp16 autocast on CUDA."""
        x = to_device(batch, self.device)
        with torch.no_grad():
            if amp and self.device.type == "cuda":
                with torch.autocast(device_type="cuda", dtype=torch.float16):
                    out = self.model(x).float()
            else:
                out = self.model(x)
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)


class OnnxRuntimeEngine:
    """The network exported to ONNX and run by ONNX Runtime.

    Parameters
    ----------
    model : torch.nn.Module
        The network (on any device; exported from a CPU copy).
    in_channels : int
        Its input channels.
    shape_multiple : tuple of 3 ints
        A (z, y, x) tile shape the network accepts, used for the export.
    device : torch.device
        CUDA uses ONNX Runtime's CUDA provider when it is installed.
    threads : int or None
        Intra-op threads (default: torch's current count).

    Raises
    ------
    EnhanceError
        ONNX Runtime or the ONNX exporter is not installed, or the export fails.

    """

    name = "onnxruntime"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        in_channels: int,
        shape_multiple: tuple[int, int, int],
        device: torch.device,
        threads: int | None = None,
    ) -> None:
        if not onnxruntime_available():
            raise EnhanceError(
                "ONNX Runtime is not installed",
                "pip install onnxruntime onnx, or use the torch engine",
            )
        import onnxruntime

        example = torch.zeros(
            (1, in_channels, *(2 * m for m in shape_multiple)), dtype=torch.float32
        )
        axes = {0: "n", 2: "z", 3: "y", 4: "x"}
        buffer = io.BytesIO()
        cpu_model = _cpu_copy(model)
        try:
            with warnings.catch_warnings():
                # the exporter warns of the shape check it traces through;
                # tiles always meet it (enhance.predict pads them)
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    cpu_model,
                    (example,),
                    buffer,  # type: ignore[arg-type]  # file objects work too
                    dynamo=False,
                    input_names=["x"],
                    output_names=["y"],
                    dynamic_axes={"x": axes, "y": axes},
                    opset_version=_OPSET,
                )
        except Exception as error:  # the exporter raises many kinds
            raise EnhanceError(
                f"the network cannot be exported to ONNX ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]})",
                "use the torch engine",
            ) from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if (
            device.type == "cuda"
            and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(
            buffer.getvalue(), options, providers=providers
        )
        self.providers = tuple(self.session.get_providers())

    def run(self, batch: NDArray[np.float32], *, amp: bool) -> NDArray[np.float32]:
        """See `InferenceEngine.run` (``amp`` is ignored: the graph is float32)."""
        del amp
        (out,) = self.session.run(
            None, {"x": np.ascontiguousarray(batch, dtype=np.float32)}
        )
        return np.asarray(out, dtype=np.float32)


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime and the ONNX exporter's package are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_engine(name: str, device: torch.device) -> str:
    """The engine ``name`` means on ``device`` (``auto`` decided).

    Raises
    ------
    EnhanceError
        An unknown name, or ``onnxruntime`` when it is not installed.

    """
    if name not in ENGINES:
        raise EnhanceError(
            f"unknown inference engine {name!r}", f"use one of {', '.join(ENGINES)}"
        )
    if name == "auto":
        return "torch"
    if name == "onnxruntime" and not onnxruntime_available():
        raise EnhanceError(
            "ONNX Runtime is not installed",
            "pip install onnxruntime onnx, or use --engine torch",
        )
    return name


def make_engine(
    name: str,
    model: torch.nn.Module,
    *,
    in_channels: int,
    shape_multiple: tuple[int, int, int],
    device: torch.device,
) -> InferenceEngine:
    """An engine for ``model`` (``name`` as `resolve_engine` takes it)."""
    if resolve_engine(name, device) == "onnxruntime":
        return OnnxRuntimeEngine(
            model, in_channels=in_channels, shape_multiple=shape_multiple, device=device
        )
    return TorchEngine(model, device)


def _cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model on the CPU in eval mode (the original is left where it is)."""
    if all(p.device.type == "cpu" for p in model.parameters()):
        return model.eval()
    import copy

    return copy.deepcopy(model).to("cpu").eval()
