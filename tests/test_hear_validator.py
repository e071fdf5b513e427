"""The HEAR 2021 submission validator on both HEAR modules of this package.

``hearvalidator`` 2021.0.2 (the HEAR 2021 competition's own checker, console script
``hear-validator = hearvalidator.validate:main``) is run here as its command line, in a fresh
interpreter, exactly as a HEAR submitter runs it::

    hear-validator audioenc.hear --model CODEC.safetensors --device cpu
    hear-validator audioenc.timing.weak_hear --model CRNN_FOLDER --device cpu

on a tiny seeded codec export and a tiny seeded weak CRNN. It imports the module, calls
``load_model(path)`` with no other argument, checks ``sample_rate`` (one of 16000, 22050, 44100,
48000), the embedding sizes, ``get_timestamp_embeddings`` on 16 sounds of 2 s of white noise
(float32, shapes, timestamps evenly spaced within 1 ms) and ``get_scene_embeddings`` on 8 sounds
of 3.74 s, and prints ``Looks good!``. A negative control runs its ``ValidateModel`` on a module
that asks for the encoders' own 24 kHz: it must be refused at the sample-rate check.

**TensorFlow.** The package declares ``tensorflow>=2.0`` as a requirement and imports it at the
top of ``hearvalidator/validate.py``, but for a PyTorch model it uses TensorFlow in one place:
``isinstance(model, tf.Module)``, to tell a TensorFlow model from a PyTorch one (``tf.device``,
``tf.random``, ``tf.math`` are reached only when that test is True). TensorFlow is not installed
for the tests (hundreds of MB, for that one ``isinstance``): when it is absent, the validator's
process gets ``tests/hear_stub`` on ``PYTHONPATH``, whose ``tensorflow`` package defines only a
``Module`` class that nothing instantiates, so the validator takes its unchanged PyTorch path.
With a real TensorFlow installed, the stand-in is not used.

The validator itself is needed: ``pip install --no-deps hearvalidator==2021.0.2`` (``--no-deps``
keeps TensorFlow out; ``make setup`` installs it so): without it these tests fail with that line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import audioenc
from audioenc.config import ModelConfig
from audioenc.models.codec import CodecModel
from audioenc.models.files import export_model
from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder

if importlib.util.find_spec("hearvalidator") is None:
    raise ImportError(
        "the HEAR validator is not installed: pip install --no-deps hearvalidator==2021.0.2 (make setup does it)"
    )

STUB = Path(__file__).parent / "hear_stub"
REAL_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _codec_export(directory: Path) -> str:
    torch.manual_seed(0)
    config = ModelConfig(n_filters=4, dimension=16, lstm=1, channels=1, quantizer="none", q_dropout=False)
    export_model(directory, "model_best", CodecModel.from_config(config).eval(), config)
    return str(directory / "model_best.safetensors")


def _crnn_folder(directory: Path) -> str:
    torch.manual_seed(0)
    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    return str(save_weak_encoder(crnn.eval(), directory / "weak"))


def _run_validator(module: str, model_path: str) -> subprocess.CompletedProcess:
    """``hear-validator MODULE --model PATH --device cpu`` in a new interpreter; the audioenc under
    test first on its path (and the TensorFlow stand-in when TensorFlow is absent)."""
    paths = [str(Path(audioenc.__file__).parents[1])] + ([] if REAL_TENSORFLOW else [str(STUB)])
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "hearvalidator.validate", module, "--model", model_path, "--device", "cpu"]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=environment, timeout=600)


def _passed(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0 and result.stdout.rstrip().endswith("Looks good!"), (
        f"hear-validator failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def test_validator_passes_the_codec_module(tmp_path):
    output = _passed(_run_validator("audioenc.hear", _codec_export(tmp_path)))
    assert "Model sample rate is: 48000" in output
    assert "Passing in audio batch of shape: torch.Size([16, 96000])" in output  # 2 s at 48 kHz
    assert "Received embedding of shape: torch.Size([16, 150, 16])" in output  # 75 frames/s at 24 kHz
    assert "Received timestamps of shape: torch.Size([16, 150])" in output
    assert "Interval between timestamps is 13.333" in output
    assert "Received embedding of shape: torch.Size([8, 16])" in output  # scene embeddings


def test_validator_passes_the_weak_crnn_module(tmp_path):
    output = _passed(_run_validator("audioenc.timing.weak_hear", _crnn_folder(tmp_path)))
    assert "Model sample rate is: 48000" in output
    assert "Received embedding of shape: torch.Size([16, 50, 12])" in output  # 25 frames/s
    assert "Interval between timestamps is 40.0ms" in output
    assert "Received embedding of shape: torch.Size([8, 12])" in output


def test_validator_refuses_the_encoders_own_24_khz(tmp_path, monkeypatch, capsys):
    """Negative control, in this process: the checker is live and the stand-in changes nothing.

    The validator refuses 24000 Hz at its first check. (hearvalidator 2021.0.2 then fails to format
    its own message, ``self.sample_rate`` of the validator, so the refusal arrives as an
    AttributeError rather than its ModelError; either is a refusal at the sample-rate check.)
    """
    (tmp_path / "native_rate_hear.py").write_text(
        "from audioenc import hear\n"
        "from audioenc.hear import get_scene_embeddings, get_timestamp_embeddings\n\n\n"
        "def load_model(model_file_path=''):\n"
        "    return hear.load_model(model_file_path, sample_rate=None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    if not REAL_TENSORFLOW:  # the stand-in, for this test only (monkeypatch removes it afterwards)
        stub_spec = importlib.util.spec_from_file_location("tensorflow", STUB / "tensorflow" / "__init__.py")
        stub = importlib.util.module_from_spec(stub_spec)
        stub_spec.loader.exec_module(stub)
        monkeypatch.setitem(sys.modules, "tensorflow", stub)
    spec = importlib.util.find_spec("hearvalidator.validate")
    validate = importlib.util.module_from_spec(spec)  # a private copy: never registered in sys.modules
    spec.loader.exec_module(validate)
    validator = validate.ValidateModel("native_rate_hear", _codec_export(tmp_path), device="cpu")
    with pytest.raises((validate.ModelError, AttributeError)):
        validator()
    output = capsys.readouterr().out
    assert "Model sample rate is: 24000" in output and "Checking model embedding size" not in output
