"""Named encoders (audioenc.timing.named_encoders) through load_encoder, and the encoder options
every kind refuses or takes (audioenc.timing.encoders).

References: CREPE through the registry equals CREPE built directly with ``crepe.load_crepe`` at the
same hop (itself checked against torchcrepe in test_crepe.py), its grid picked by hand (frame ``k``
at ``k · hop``; grid frame ``j`` centred on ``(j + 1/2) · hop`` takes frame ``j``, the earlier one
of a tie); the reported numbers are CREPE's (1024-sample window at 16 kHz = 64 ms).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.config import ModelConfig
from audioenc.errors import UserError
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model
from audioenc.timing.encoders import encoder_embeddings, load_encoder
from audioenc.timing.named_encoders import NAMED_ENCODERS, NamedEncoder, register_named_encoder
from audioenc.timing.pretrained import crepe
from tests.timing import hf_tiny


def test_crepe_by_name_at_a_chosen_hop_equals_crepe_built_directly(tmp_path):
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.1, 8000).astype(np.float32)  # 0.5 s at 16 kHz
    sf.write(tmp_path / "a.wav", audio, 16000, subtype="FLOAT")  # the samples exactly
    handle = load_encoder("crepe-tiny", hop_ms=20.0)
    assert (handle.kind, handle.source, handle.sample_rate, handle.embedding_size) == (
        "crepe",
        "crepe-tiny",
        16000,
        256,
    )
    assert handle.options == {"hop_ms": 20.0} and handle.describe()["options"] == {"hop_ms": 20.0}
    details = handle.describe()["pretrained"]
    assert details["family"] == "crepe" and details["capacity"] == "tiny" and details["layer"].startswith("block 5")
    assert (details["frame_rate"], details["stride_samples"], details["sample_rate"]) == (50.0, 320, 16000)
    assert (details["receptive_field_samples"], details["receptive_field_ms"]) == (1024, 64.0)
    assert details["weights_file"] == str(crepe.shipped_weights("tiny"))
    result = encoder_embeddings(handle, tmp_path, ["a.wav"])
    direct = crepe.load_crepe("tiny", 20.0)
    reference = direct.frame_embeddings(torch.from_numpy(audio)[None])
    timestamps = direct.timestamps_ms(1, reference.shape[1], torch.device("cpu"))[0]
    # 1 + 8000 // 320 = 26 frames at 0, 20, ... 500 ms; 25 grid frames centred on 10, 30, ... 490 ms: a tie
    # between frames j and j + 1, the earlier one taken, so grid frame j is CREPE frame j.
    assert reference.shape[1] == 26 and float(timestamps[-1]) == 500.0
    assert result.frame_rate == 50.0 and result.frames["a.wav"].shape == (256, 25)
    np.testing.assert_array_equal(result.frames["a.wav"], reference[0, :25].numpy().T)


def test_crepe_full_by_name_and_a_weight_file_of_the_same_architecture():
    full = load_encoder("crepe-full")
    assert full.model.capacity == "full" and full.embedding_size == 2048 and full.model.hop_ms == 10.0
    given = load_encoder("crepe-tiny", str(crepe.shipped_weights("tiny")))
    assert given.model.capacity == "tiny"
    with pytest.raises(UserError, match="holds the tiny model, not full"):
        load_encoder("crepe-full", str(crepe.shipped_weights("tiny")))


def test_an_unknown_name_lists_the_named_encoders():
    with pytest.raises(FileNotFoundError) as error:
        load_encoder("crepe-huge")
    message = str(error.value)
    assert "nor a named encoder (crepe-tiny, crepe-full)" in message and "neither an existing file" in message
    assert set(NAMED_ENCODERS) >= {"crepe-tiny", "crepe-full"}


def test_an_existing_path_wins_over_a_name(saved_crnn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crnn").rename(tmp_path / "crepe-tiny")
    assert load_encoder("crepe-tiny").kind == "weak_crnn"


def test_a_name_is_registered_once():
    entry = NAMED_ENCODERS["crepe-tiny"]
    with pytest.raises(ValueError, match="already registered"):
        register_named_encoder(NamedEncoder(entry.name, "", "crepe", (), entry.load, entry.describe))


def test_an_option_an_encoder_does_not_take_names_the_setting_and_the_kind(saved_crnn, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(n_filters=4, dimension=16, lstm=1)
    export_model(tmp_path / "codec", "model_best", CodecModel.from_config(config).eval(), config)
    snapshot = hf_tiny.wav2vec2(tmp_path / "wav2vec2")
    cases = [
        (str(tmp_path / "codec"), {"layer": 3}, "encoder.layer=3", "kind codec"),
        (saved_crnn, {"layer": 3}, "encoder.layer=3", "kind weak_crnn"),
        ("audioenc.timing.weak_hear", {"layer": "all"}, "encoder.layer='all'", "kind hear_module"),
        ("crepe-tiny", {"layer": 3}, "encoder.layer=3", "kind crepe"),
        ("crepe-full", {"bandwidth": 1.5}, "encoder.bandwidth=1.5", "kind crepe"),
        (str(snapshot), {"hop_ms": 5.0}, "encoder.hop_ms=5.0", "kind hf_snapshot"),
    ]
    for spec, options, setting, kind in cases:
        with pytest.raises(UserError) as error:
            load_encoder(spec, **options)
        message = str(error.value)
        assert setting in message and kind in message and "\n" not in message, message
        assert "hop_ms to crepe-tiny, crepe-full" in message  # where the option would apply
    assert load_encoder(snapshot, layer="all").describe()["pretrained"]["layer"] == "all (0-2)"
