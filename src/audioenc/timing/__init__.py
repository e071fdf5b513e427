"""The timing-aware half: features, pooling, weak-label encoders, probes, boundaries, report."""
