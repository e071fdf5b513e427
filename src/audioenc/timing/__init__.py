"""The timing-aware half: log-mel features, pooling, the weak-label CRNN, frozen encoders, probes,
adaptation, evaluation and the lab workflow. Importing it registers the weak CRNN's HEAR loader
with :mod:`audioenc.hear` (:mod:`audioenc.timing.weak_hear`)."""

from audioenc.timing import weak_hear as _weak_hear  # noqa: F401  (registers the HEAR loader)
