"""Reconstruction, adversarial and feature-matching losses, and the gradient balancer."""
