"""Single source of the pairscope version."""

__version__ = "0.1.0"
