"""`audioenc info` and the `train` command line (usage errors, flags -> config)."""

from __future__ import annotations

import pytest

from audioenc.cli import build_parser, main
from audioenc.commands.train import config_from_args


def test_info_prints_exact_counts_equal_to_audiocraft(capsys):
    # Published reference: audiocraft encodec_base_24khz SEANet and MS-STFT discriminator counted from
    # the reference implementation (see tests/models/test_seanet.py, test_discriminators.py).
    assert main(["info", "--1ch", "--quantizer", "rvq"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["sample_rate"] == "24000 Hz"
    assert lines["hop_length"] == "320 samples"
    assert lines["frame_rate"] == "75 frames/s"
    assert lines["bitrate"].startswith("24 kbps")
    assert lines["params_encoder"] == "7337792"
    assert lines["params_decoder"] == "7338018"
    assert lines["params_discriminator"] == "472330"


def test_info_32ch_discriminator_follows_channels(capsys):
    assert main(["info", "--32ch"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["channels"] == "32"
    assert lines["params_encoder"] == "7344736"
    assert lines["params_discriminator"] == "740170"
    assert "bitrate" not in lines


@pytest.mark.parametrize("argv", [["train"], ["train", "--1ch", "--32ch"], ["info"]])
def test_channel_mode_is_exactly_one(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "--1ch" in capsys.readouterr().err


def test_train_flags_map_to_config():
    args = build_parser().parse_args(
        [
            "train",
            "--32ch",
            "--preset",
            "small",
            "--epochs",
            "3",
            "--batch-size",
            "2",
            "--quantizer",
            "rvq",
            "--segment-seconds",
            "0.25",
            "--logger",
            "none",
            "optim.lr=1e-3",
        ]
    )
    config = config_from_args(args)
    assert (config.model.channels, config.data.channel_mode) == (32, "all")
    assert (config.train.epochs, config.train.batch_size, config.model.quantizer) == (3, 2, "rvq")
    assert config.data.segment_seconds == 0.25 and config.optim.lr == 1e-3 and config.train.logger == "none"


def test_unknown_override_is_a_clear_error():
    args = build_parser().parse_args(["train", "--1ch", "optim.learningrate=1"])
    with pytest.raises(KeyError, match="valid keys: optim.lr"):
        config_from_args(args)


def test_cli_reports_config_errors_without_traceback(capsys):
    assert main(["info", "--1ch", "model.quantiser=rvq"]) == 2
    err = capsys.readouterr().err
    assert "audioenc info: error: Unknown config key model.quantiser;" in err
    assert "Traceback" not in err
