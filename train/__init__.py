"""Model definitions, checkpoints and training for the three style-transfer families.

``train.nets`` holds every architecture once; ``train.checkpoint`` reads and writes
the project's one checkpoint format. ``realtime`` and ``export`` build on these.
"""
