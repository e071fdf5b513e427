"""bf16 autocast checked layer by layer (audioenc.training.precision)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audioenc.config import build_config
from audioenc.models.codec import CodecModel, build_discriminator
from audioenc.training.precision import (
    TOLERANCE,
    check_bf16_layers,
    describe,
    guard_bf16,
    layer_error,
    run_in_float32,
)
from audioenc.training.trainer import Trainer


def _small(channels_mode: str = "1ch"):
    """The small preset's codec and discriminator and a batch of its training shape (2 items)."""
    config = build_config(channels_mode, "small", [])
    torch.manual_seed(0)
    model = CodecModel.from_config(config.model)
    discriminator = build_discriminator(config.discriminator, config.model)
    length = round(config.data.segment_seconds * config.model.sample_rate)
    audio = torch.randn(2, config.model.channels, length, generator=torch.Generator().manual_seed(1))
    return model, discriminator, audio


def _break_under_autocast(module: nn.Module) -> None:
    """Make ``module`` behave like a wrong bf16 kernel: right in float32, time-reversed under autocast."""
    forward = module.forward

    def broken(x, *args, **kwargs):
        out = forward(x, *args, **kwargs)
        return out.flip(-1) if torch.is_autocast_enabled("cpu") else out

    module.forward = broken


def test_layer_error_is_bf16_rounding_for_a_right_kernel():
    # A stride-1 convolution: bf16 inputs and weights (8 significant bits) give a small, nonzero
    # relative error; the float64 reference is computed independently of the module.
    torch.manual_seed(0)
    conv = nn.Conv1d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 500)
    error = layer_error("conv", conv, x, "cpu")
    assert 1e-4 < error.output < 0.02 and error.input_grad < 0.02 and error.weight_grad < 0.02
    rounded = F.conv1d(x.bfloat16().double(), conv.weight.bfloat16().double(), conv.bias.bfloat16().double(), padding=1)
    exact = F.conv1d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    # The measured error is that of rounding inputs and weights to bf16 (plus the output's own rounding).
    expected = ((rounded - exact).norm() / exact.norm()).item()
    assert error.output == pytest.approx(expected, rel=1.0, abs=4e-3)


def test_a_wrong_kernel_is_found_and_its_layer_runs_in_float32():
    model, discriminator, audio = _small()
    victim = model.decoder.model[0].conv  # the decoder's first convolution
    _break_under_autocast(victim)
    errors = {e.name: e for e in check_bf16_layers(model, discriminator, audio)}
    assert errors["model.decoder.model.0.conv"].output > TOLERANCE  # a time-reversed output
    wrong = guard_bf16(model, discriminator, audio)
    assert "model.decoder.model.0.conv" in [e.name for e in wrong]
    # After the guard every layer autocast touches is within bf16 rounding on this machine (the
    # kernels that are really wrong here, if any, included).
    assert all(e.worst <= TOLERANCE for e in check_bf16_layers(model, discriminator, audio))


def test_guard_covers_every_autocast_layer_of_codec_and_discriminator():
    model, discriminator, audio = _small()
    names = [e.name for e in check_bf16_layers(model, discriminator, audio)]
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.LSTM))]
    disc_convs = [n for n, m in discriminator.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(names) == sorted([f"model.{n}" for n in convs] + [f"discriminator.{n}" for n in disc_convs])
    assert names[0].startswith("model.encoder") and names[-1].startswith("discriminator")


def test_run_in_float32_keeps_weights_and_computes_in_float32():
    conv = nn.Conv1d(4, 4, 3)
    keys = list(conv.state_dict())
    run_in_float32(conv)
    x = torch.randn(1, 4, 50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.conv1d(x, conv.weight, conv.bias), rtol=0, atol=0)
    assert list(conv.state_dict()) == keys


def test_describe_names_the_shape():
    assert describe(nn.Conv1d(16, 32, 8, stride=4)) == "Conv1d 16→32, kernel 8, stride 4"
    assert describe(nn.Conv2d(1, 8, (3, 9), stride=(1, 2))) == "Conv2d 1→8, kernel (3, 9), stride (1, 2)"
    assert describe(nn.LSTM(32, 32, 2)) == "LSTM 32→32, 2 layers"


def test_bf16_trainer_on_the_small_preset_shapes_is_right_everywhere(tmp_path):
    """The small preset's shapes include a convolution oneDNN's AMX bf16 kernel computes wrongly
    (precision.py); whatever this machine's kernels do, the trainer's layers are right after its
    check, and the layers it runs in float32 are the ones it reported."""
    overrides = ["train.batch_size=2", "train.logger=none", "train.precision=bf16"]
    trainer = Trainer(build_config("1ch", "small", overrides), tmp_path, torch.device("cpu"))
    audio = torch.randn(2, 1, 12000, generator=torch.Generator().manual_seed(3))
    assert all(e.worst <= TOLERANCE for e in check_bf16_layers(trainer.model, trainer.discriminator, audio))
    fresh_model, fresh_discriminator, _ = _small()  # the same architecture, unguarded
    wrong_here = {e.name for e in check_bf16_layers(fresh_model, fresh_discriminator, audio) if e.worst > TOLERANCE}
    assert {e.name for e in trainer.float32_layers} == wrong_here
