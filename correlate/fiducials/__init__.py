"""Fiducial marks of a sample holder: their layout and finding them in images.

``marks`` describes the holder's marks, ``detect`` finds them in an image
(``detect_marks``) through ``background``, ``segmentation``, ``descriptors``,
``matching``, ``fit`` and ``orientation``.
"""
