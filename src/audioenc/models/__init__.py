"""Streamable convolutions, SEANet, codec wrapper, discriminators (the quantizers: audioenc.quantization)."""
