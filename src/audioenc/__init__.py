"""audioenc: train EnCodec-style neural audio encoders and show what they keep of time."""

__version__ = "0.1.0"

SAMPLE_RATE = 24_000
"""Sample rate of every model in this package, in Hz."""
