"""A trained audioenc codec in other frameworks, and other frameworks' codecs in audioenc.

* :mod:`audioenc.interop.hf` — Hugging Face ``transformers``: ``audioenc export RUN --format hf OUT``
  writes an ``EncodecModel`` folder (exact: same codes, same audio to float32 rounding), and
  ``audioenc import-hf DIR RUN`` turns a local ``EncodecModel`` snapshot into an audioenc run folder.
  Built from :mod:`~audioenc.interop.hf_config` (the two configurations) and
  :mod:`~audioenc.interop.hf_keys` (the weights' names), which need no ``transformers``.
* :mod:`audioenc.interop.onnx` — ``--format onnx`` (any codec, continuous and 32-channel ones too).

Every exporter has the signature ``export_X(model, config, out)`` so that ``audioenc export``
dispatches on ``--format`` alone.
"""
