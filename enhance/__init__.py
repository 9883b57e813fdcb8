"""pairscope enhancement: wide-field to confocal models, training and inference.

A pure library: arrays and metadata in, results out. It never imports
``acquire`` and never touches hardware.
"""
