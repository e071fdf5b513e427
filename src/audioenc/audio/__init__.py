"""Audio I/O, datasets and the embedded synthetic corpora."""
