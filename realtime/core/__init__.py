"""What every side of the project uses, and nothing above it: networks and their family registry,
the IO contract, model files (checkpoints, ONNX, TorchScript), images, devices, errors, downloads
and the model cache, VGG19 features, the one perceptual loss, Gatys optimisation and quality metrics.

``train/``, ``export/`` and the runtime all import from here; this package imports none of them.
"""
