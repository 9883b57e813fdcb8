"""pairscope acquisition: devices, simulated specimen, sequences, storage, CLI."""

from acquire._version import __version__

__all__ = ["__version__"]
