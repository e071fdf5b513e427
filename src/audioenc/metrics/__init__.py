"""Reconstruction and event metrics."""
