"""Tests for audioenc.models.files: a codec from an export, a training checkpoint or a run folder,
and clear errors for what is not one.
"""

from __future__ import annotations

import pytest

from audioenc.config import Config
from audioenc.models.files import export_model, load_codec, model_weights_hash
from audioenc.training.checkpoint import save_training_state
from tests.codec_io.conftest import small_config, small_model


def test_load_codec_from_export_checkpoint_and_run_folder(tmp_path):
    model, config = small_model(quantizer="rvq")
    export_model(tmp_path / "export", "model_best", model, config)
    state = {"config": Config(model=config).to_dict(), "model": model.state_dict(), "step": 3}
    save_training_state(tmp_path / "run" / "checkpoint_last.pt", state)
    reference = model_weights_hash(model)
    for path in (
        tmp_path / "export" / "model_best.safetensors",
        tmp_path / "run" / "checkpoint_last.pt",
        tmp_path / "export",
        tmp_path / "run",
    ):
        loaded, loaded_config = load_codec(path)
        assert loaded_config == config
        assert not loaded.training
        assert model_weights_hash(loaded) == reference


def test_load_codec_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="No codec"):
        load_codec(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="model_best.safetensors"):
        load_codec(tmp_path)
    save_training_state(tmp_path / "checkpoint_x.pt", {"step": 1})
    with pytest.raises(ValueError, match="no config / model entry"):
        load_codec(tmp_path / "checkpoint_x.pt")
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ValueError, match="unknown codec file type"):
        load_codec(tmp_path / "weights.bin")
    model, config = small_model()
    other = small_config(dimension=8)
    state = {"config": Config(model=other).to_dict(), "model": model.state_dict()}
    save_training_state(tmp_path / "checkpoint_bad.pt", state)
    with pytest.raises(ValueError, match="do not fit its own saved config"):
        load_codec(tmp_path / "checkpoint_bad.pt")
