"""pairscope correlation: fiducials, stage-to-stage transforms, registration.

A pure library: arrays, points and metadata in, results out. It never imports
``acquire`` and never touches hardware.
"""
