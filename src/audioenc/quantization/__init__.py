"""Quantizers between a codec's encoder and decoder: the interface (``base``), the continuous pass-through
(``null``), EnCodec's residual VQ (``rvq``), finite scalar quantization (``fsq``) and the name registry."""
