"""Training of the motion model (section IV-A-2): config, builder, trainer, checkpoints, distributed setup."""
