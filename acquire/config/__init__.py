"""Micro-Manager configuration files: reading, checking and what they declare.

``parse`` reads a ``.cfg`` into lines, ``line_rules`` and ``file_rules`` check
them (``check`` runs both, ``errors`` reports with file and line), ``model``
is what a checked file declares, ``adapters`` and ``pydevices`` find the device
libraries and Python devices it names, ``objectives`` reads objective labels,
``stage_limits`` the soft travel limits, ``bundled`` the configs shipped with
pairscope.
"""
