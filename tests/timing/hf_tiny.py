"""Tiny randomly initialised ``transformers`` snapshots, one per supported family, for the tests.

Each is built from the family's real config class at small sizes (hidden 16-32, 1-2 layers, few
filters), saved with ``save_pretrained`` (plus a feature extractor where the family has one), and so
loads through the real loading code. The frame geometry of the speech SSL families is the stock one
(conv kernels 10, 3, 3, 3, 3, 2, 2, strides 5, 2, 2, 2, 2, 2, 2 at 16 kHz); the windowed models are
shortened to a 1 s window so that windowing is exercised on short clips.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

SSL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (8,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}


def _save(model, folder: Path, extractor=None) -> Path:
    model.eval().save_pretrained(folder)
    if extractor is not None:
        extractor.save_pretrained(folder)
    return folder


def wav2vec2(folder: Path) -> Path:
    """Large-model layout (layer-norm convs, stable layer norm), no input normalisation: hidden
    state 0 depends only on a local stretch of audio (used by the exact windowing test)."""
    config = tf.Wav2Vec2Config(**SSL, feat_extract_norm="layer", do_stable_layer_norm=True)
    extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=False)
    return _save(tf.Wav2Vec2Model(config), folder, extractor)


def hubert(folder: Path) -> Path:
    """No preprocessor_config.json: the loader uses transformers' default extractor (16 kHz, normalised)."""
    return _save(tf.HubertModel(tf.HubertConfig(**SSL)), folder)


def wavlm(folder: Path) -> Path:
    extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)
    return _save(tf.WavLMModel(tf.WavLMConfig(**SSL, num_buckets=32, max_bucket_distance=100)), folder, extractor)


def whisper(folder: Path) -> Path:
    """50 encoder positions = 100 mel frames = a 1 s window (chunk_length=1)."""
    config = tf.WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=50,
        max_target_positions=8,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    extractor = tf.WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, chunk_length=1)
    return _save(tf.WhisperModel(config), folder, extractor)


def ast(folder: Path) -> Path:
    """32 mel bins, 100 filterbank frames (a 1.015 s window): patches 2 (frequency) x 9 (time)."""
    config = tf.ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=32,
        max_length=100,
    )
    extractor = tf.ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    return _save(tf.ASTModel(config), folder, extractor)


def encodec(folder: Path) -> Path:
    """24 kHz, hop 4 * 4 * 4 * 5 = 320 (75 frames/s), codebooks of 16 (0.3 kbps each), 10 codebooks at 3 kbps."""
    config = tf.EncodecConfig(
        num_filters=4,
        hidden_size=16,
        num_residual_layers=1,
        upsampling_ratios=[4, 4, 4, 5],
        codebook_size=16,
        target_bandwidths=[1.5, 3.0],
        num_lstm_layers=1,
    )
    return _save(tf.EncodecModel(config), folder)


def dac(folder: Path) -> Path:
    """16 kHz, hop 2 * 4 * 4 = 32 (500 frames/s), 3 codebooks of 16 (2 kbps each)."""
    config = tf.DacConfig(
        encoder_hidden_size=4,
        decoder_hidden_size=8,
        downsampling_ratios=[2, 4, 4],
        hidden_size=16,
        n_codebooks=3,
        codebook_size=16,
        codebook_dim=4,
        sampling_rate=16000,
    )
    return _save(tf.DacModel(config), folder)


def mimi(folder: Path) -> Path:
    """24 kHz, SEANet hop 320 then a stride-2 downsampling: 640 samples per frame (37.5 frames/s)."""
    config = tf.MimiConfig(
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[4, 4, 4, 5],
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=32,
        codebook_size=16,
        codebook_dim=8,
        vector_quantization_hidden_dimension=8,
        num_quantizers=4,
        num_semantic_quantizers=1,
        sliding_window=25,
        upsample_groups=16,
    )
    return _save(tf.MimiModel(config), folder)


def bert(folder: Path) -> Path:
    """A text model: a valid snapshot of an unsupported architecture."""
    config = tf.BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50
    )
    return _save(tf.BertModel(config), folder)


BUILDERS = {
    "wav2vec2": wav2vec2,
    "hubert": hubert,
    "wavlm": wavlm,
    "whisper": whisper,
    "ast": ast,
    "encodec": encodec,
    "dac": dac,
    "mimi": mimi,
    "bert": bert,
}


def build_all(root: Path) -> dict[str, Path]:
    """Every tiny snapshot under ``root``, seeded: name -> folder."""
    torch.manual_seed(0)
    return {name: build(root / name) for name, build in BUILDERS.items()}
