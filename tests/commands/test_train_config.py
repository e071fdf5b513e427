"""`audioenc train --config FILE`: JSON or YAML settings files, a run's config.json taken back, precedence.

References: the values written into each file by hand; the order of the layers as ``train --help`` states
it (defaults < channel mode and preset < --config < flags < KEY=VALUE).
"""

from __future__ import annotations

import json

import pytest

from audioenc.cli import build_parser, main
from audioenc.commands.train import config_from_args
from audioenc.config import Config, build_config


def config_for(*argv: str) -> Config:
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_a_json_file_sets_any_subset_of_the_sections(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"optim": {"lr": 2e-4, "betas": [0.8, 0.99]}, "model": {"quantizer": "rvq"}}))
    config = config_for("--1ch", "--preset", "small", "--config", str(path))
    assert config.optim.lr == 2e-4 and config.optim.betas == (0.8, 0.99) and config.model.quantizer == "rvq"
    assert config.model.n_filters == 8 and config.train.batch_size == 8  # the rest: the small preset's


def test_a_yaml_file_sets_any_subset_of_the_sections(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("optim:\n  lr: 2.0e-4\ntrain:\n  epochs: 3\n  perceptual_measures: [stoi]\ndata:\n  root: null\n")
    config = config_for("--32ch", "--config", str(path))
    assert config.optim.lr == 2e-4 and config.train.epochs == 3 and config.train.perceptual_measures == ("stoi",)
    assert config.data.root is None and config.model.channels == 32  # the rest: the channel mode's


def test_a_runs_config_json_reproduces_its_settings(tmp_path):
    saved = build_config("32ch", "small", ["model.quantizer=rvq", "optim.lr=5e-4", "train.seed=7"])
    saved.save(tmp_path / "config.json")
    # Another channel mode and preset underneath: every key comes from the file.
    assert config_for("--1ch", "--config", str(tmp_path / "config.json")) == saved
    assert Config.load(tmp_path / "config.json") == saved


def test_an_unknown_key_in_the_file_lists_the_valid_ones(tmp_path, capsys):
    path = tmp_path / "typo.yml"
    path.write_text("optim:\n  learning_rate: 1.0e-4\n")
    with pytest.raises(KeyError, match="Unknown config key optim.learning_rate; use one of the valid keys: optim.lr"):
        config_for("--1ch", "--config", str(path))
    assert main(["train", "--1ch", "--run-dir", str(tmp_path / "run"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "audioenc train: error: Unknown config key optim.learning_rate;" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_file_that_is_no_settings_file_is_one_error(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"optim": {"lr": 1e-4,}')
    with pytest.raises(ValueError, match="broken.json: not JSON"):
        config_for("--1ch", "--config", str(broken))
    flat = tmp_path / "flat.yaml"
    flat.write_text("optim: 3\n")
    with pytest.raises(ValueError, match="flat.yaml: section 'optim' must be an object"):
        config_for("--1ch", "--config", str(flat))


def test_precedence_preset_then_file_then_flags_then_overrides(tmp_path):
    path = tmp_path / "layer.json"
    path.write_text(json.dumps({"optim": {"lr": 2e-4}, "train": {"epochs": 5, "batch_size": 3, "seed": 4}}))
    config = config_for(
        "--1ch", "--preset", "small", "--config", str(path), "--epochs", "7", "--batch-size", "6", "train.batch_size=9"
    )
    assert config.model.n_filters == 8  # the preset, untouched by the file
    assert config.optim.lr == 2e-4 and config.train.seed == 4  # the file over the preset (lr 1e-3) and defaults
    assert config.train.epochs == 7  # --epochs over the file
    assert config.train.batch_size == 9  # KEY=VALUE over --batch-size and the file


def test_the_help_states_the_order(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "then --1ch/--32ch and --preset, then --config FILE, then the flags" in text
