"""Acquisition sequences (useq-schema): reading, checking and planning.

``read`` loads a YAML or JSON sequence strictly (``source`` and ``problems``
point into the file, ``keys`` finds keys useq-schema would ignore), ``rules``
rejects what no acquisition can mean, ``limits`` caps size and duration,
``size`` counts without expanding, ``plan`` plans frames, bytes, time and stage
limits before a run, ``table`` renders that plan.
"""
