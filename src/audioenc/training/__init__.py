"""The GAN training step, the epoch loop, checkpoints and logging."""
