"""Micro-Manager configuration files shipped with pairscope (data only).

This file makes the folder a regular package, so that
``importlib.resources.files("hardware_configs")`` also works in an editable
install: for a namespace package, the editable finder's placeholder path
entry makes `importlib.resources` fail (python/importlib_resources#311; seen
with CPython 3.10 to 3.13.0).
"""
