"""Driving a microscope through pymmcore-plus.

``microscope`` opens, describes and closes a scope from its config,
``engine`` is the MDA engine with its ``retry`` policy, ``controller`` runs a
validated plan into a dataset and hands stacks to ``consumers``,
``snapshot`` snaps one image, ``autofocus`` is the software autofocus, and
``mmcore_compat`` holds every pymmcore-plus internal pairscope relies on.
"""
