"""The timing-aware half: log-mel features, pooling, the weak-label CRNN, frozen encoders, probes,
adaptation, evaluation and the lab workflow. The weak CRNN reaches the HEAR API through
:mod:`audioenc.timing.weak_hear`, which :func:`audioenc.hear.load_model` imports by name."""
