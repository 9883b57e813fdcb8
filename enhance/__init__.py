"""pairscope enhancement: wide-field to confocal models, training and inference.

A pure library: arrays and metadata in, results out. It never imports
``acquire`` and never touches hardware.

Modules: ``data`` (TrainingPair), ``unet`` (residual 3-D U-Net),
``normalization``, ``patches``, ``training`` (train_model), ``checkpoint``
(save/load/validate model files), ``predict`` (tiled inference: Enhancer,
enhance_stack), ``psf`` and ``deconvolution`` (Richardson-Lucy baseline),
``metrics``, ``evaluation`` (evaluate), ``device``, ``errors``. Import the
submodules directly; importing this package does not load torch.
"""
