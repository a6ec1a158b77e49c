"""Training: the Johnson and CycleGAN trainers, their data, image pools, run logs and DDP.

Networks, losses, checkpoints and everything else shared with the runtime live in
:mod:`realtime.core`; nothing in ``realtime`` imports this package.
"""
