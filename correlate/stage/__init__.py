"""Stage coordinates: camera-to-stage calibration and stage-to-stage transforms.

``camera_calibration`` (with ``image_shift``) calibrates a camera against its
stage; ``fit_transform`` fits scope A -> scope B from matched marks
(``fit_stage_transform``) with ``linear_fits``, ``ransac`` and ``tre``, and
returns a ``transform.StageTransform``; ``relocation_map`` draws a relocation.
"""
