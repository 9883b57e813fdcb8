"""The correlative workflows, each taking a core or a config and returning results.

``acquisition`` (one sequence into a dataset), ``calibrate`` (camera to
stage), ``fiducial_search`` and ``flat_fields`` (marks on a scope),
``relocation`` (``pairscope fiducials`` and ``relocate``), ``paired_run``
(relocate, acquire and register on scope B), ``pairing`` and ``pair_build``
(stacks into the paired database), ``pair_geometry``, ``live_enhance``,
``cleanup``, and the demo (``demo``, ``demo_options``, ``demo_report``).
"""
