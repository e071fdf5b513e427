"""Streamable convolutions, SEANet, residual vector quantizer, codec wrapper, discriminators."""
