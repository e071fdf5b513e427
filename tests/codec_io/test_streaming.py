"""Tests for audioenc.codec_io.streaming: chunked encoding and decoding equal the one-shot model.

References: the one-shot model (``CodecModel.encode`` / ``decode`` on the whole signal) for every
streaming result.

Streaming tolerance: chunked and one-shot results are the same arithmetic in a different
summation order, so they agree to float32 rounding; measured max |difference| 1.5e-8 (latents of
magnitude ~0.15) and 7e-8 (audio ~0.13) at chunks of 1 to 40 frames. Asserted: atol 1e-6 on
signals of magnitude 0.1-0.3.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.codec_io import StreamingDecoder, StreamingEncoder, decode_file, encode_file
from tests.codec_io.conftest import ATOL, HOP, noise, small_model, write_wav


def stream_encode(stream: StreamingEncoder, audio: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """``audio`` ``[batch, channels, time]`` fed in chunks of ``chunk_frames`` frames, the last one final."""
    chunk = chunk_frames * stream.model.hop_length
    parts, position = [], 0
    while audio.shape[-1] - position > chunk:
        parts.append(stream.encode_chunk(audio[..., position : position + chunk]))
        position += chunk
    parts.append(stream.encode_chunk(audio[..., position:], final=True))
    return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("chunk_frames", [1, 3, 16])
@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_encoder_equals_one_shot(chunk_frames, channels):
    model, _ = small_model(channels=channels)
    audio = noise(2, channels, 37 * HOP + 11)  # 38 frames; the last chunk is partial
    with torch.no_grad():
        reference, scale = model.encode(audio)
    streamed = stream_encode(StreamingEncoder(model, scale=scale), audio, chunk_frames)
    assert streamed.shape == reference.shape == (2, 16, 38)
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)


def test_carrying_state_is_what_makes_chunks_exact():
    """Without the carried state (a fresh encoder per chunk) the frames differ clearly: the test
    above would catch a stateless implementation."""
    model, _ = small_model()
    audio = noise(1, 1, 40 * HOP)
    with torch.no_grad():
        reference, scale = model.encode(audio)
        stateless = torch.cat(
            [model.encode(audio[..., i : i + 8 * HOP], scale)[0] for i in range(0, 40 * HOP, 8 * HOP)], -1
        )
    assert (stateless - reference).abs().max() > 1e-3


def test_streaming_codes_equal_one_shot_codes_and_latents_only_gives_latents():
    model, _ = small_model(quantizer="rvq")
    audio = noise(2, 1, 50 * HOP + 3, seed=5)
    with torch.no_grad():
        codes, scale = model.encode(audio)
        latents = model.encoder(audio / scale)
    assert torch.equal(stream_encode(StreamingEncoder(model, scale=scale), audio, 7), codes)
    assert torch.equal(stream_encode(StreamingEncoder(model, n_q=2, scale=scale), audio, 7), codes[:, :2])
    streamed_latents = stream_encode(StreamingEncoder(model, latents_only=True, scale=scale), audio, 7)
    torch.testing.assert_close(streamed_latents, latents, rtol=0, atol=ATOL)


@pytest.mark.parametrize("quantizer", ["none", "rvq"])
@pytest.mark.parametrize("chunk_frames", [1, 5, 64])
def test_streaming_decoder_equals_one_shot(quantizer, chunk_frames):
    model, _ = small_model(quantizer=quantizer, channels=2)
    with torch.no_grad():
        encoded, scale = model.encode(noise(2, 2, 30 * HOP, seed=3) * torch.tensor([0.01, 2.0])[:, None, None])
        reference = model.decode(encoded, scale)
    stream = StreamingDecoder(model, scale=scale)
    frames = encoded.shape[-1]
    parts = [
        stream.decode_chunk(encoded[..., i : i + chunk_frames], final=i + chunk_frames >= frames)
        for i in range(0, frames, chunk_frames)
    ]
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == reference.shape == (2, 2, 30 * HOP)
    torch.testing.assert_close(streamed, reference, rtol=0, atol=ATOL)


def test_reflect_padding_streams_exactly_with_long_enough_chunks():
    model, _ = small_model(pad_mode="reflect")
    audio = noise(1, 1, 37 * HOP + 5)
    with torch.no_grad():
        reference, scale = model.encode(audio)
    torch.testing.assert_close(
        stream_encode(StreamingEncoder(model, scale=scale), audio, 8), reference, rtol=0, atol=ATOL
    )
    with pytest.raises(ValueError, match="first chunk is only"):
        stream_encode(StreamingEncoder(model, scale=scale), audio, 2)  # the last conv's 6-frame reflection needs > 6


def test_non_causal_model_needs_one_chunk(tmp_path):
    model, config = small_model(causal=False, pad_mode="reflect")
    audio = noise(1, 1, 20 * HOP + 1)
    with torch.no_grad():
        reference, scale = model.encode(audio)
        decoded = model.decode(reference, scale)
    torch.testing.assert_close(
        StreamingEncoder(model, scale=scale).encode_chunk(audio, final=True), reference, rtol=0, atol=0
    )
    torch.testing.assert_close(
        StreamingDecoder(model, scale=scale).decode_chunk(reference, final=True), decoded, rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="not causal"):
        StreamingEncoder(model, scale=scale).encode_chunk(audio[..., : 4 * HOP])
    with pytest.raises(ValueError, match="non-causal decoder"):
        StreamingDecoder(model, scale=scale).decode_chunk(reference[..., :4])
    # Files: one pass, whatever the chunk size asked for.
    write_wav(tmp_path / "in.wav", audio[0].numpy(), 24000)
    result = encode_file(tmp_path / "in.wav", tmp_path / "enc.npz", model, config, chunk_frames=2)
    assert (result.chunks, result.header.streaming) == (1, "one-shot")
    np.testing.assert_allclose(np.load(result.path)["latents"], reference.numpy(), rtol=0, atol=ATOL)
    assert result.header.scale == pytest.approx(float(scale), rel=1e-6)
    decode_file(result.path, tmp_path / "out.wav", model, config, chunk_frames=2)
    out = sf.read(str(tmp_path / "out.wav"), always_2d=True, dtype="float32")[0].T
    np.testing.assert_allclose(out, decoded[0, :, : audio.shape[-1]].numpy(), rtol=0, atol=ATOL)


def test_streaming_encoder_input_checks():
    model, _ = small_model()
    with pytest.raises(ValueError, match="normalises its input level; pass scale="):
        StreamingEncoder(model)
    with pytest.raises(ValueError, match="pass the encoder's scale="):
        StreamingDecoder(model)
    stream = StreamingEncoder(model, scale=0.5)
    with pytest.raises(ValueError, match="multiple of the hop length 32"):
        stream.encode_chunk(torch.zeros(1, 1, 33))
    with pytest.raises(ValueError, match=r"\[batch, 1, time\]"):
        stream.encode_chunk(torch.zeros(1, 2, 32))
    stream.encode_chunk(torch.zeros(1, 1, 5), final=True)
    with pytest.raises(RuntimeError, match="reset"):
        stream.encode_chunk(torch.zeros(1, 1, 32))
    with pytest.raises(ValueError, match="n_q"):
        StreamingEncoder(model, n_q=2, scale=0.5)
