"""Config: the seeds' numbers, presets, overrides and their errors."""

from __future__ import annotations

import pytest

from audioenc.config import PERCEPTUAL_MEASURES, Config, build_config
from audioenc.metrics.perceptual import MEASURES


def test_channel_modes_are_the_seed_numbers():
    mono = build_config("1ch")
    multi = build_config("32ch")
    assert (mono.model.channels, mono.train.batch_size, mono.data.channel_mode) == (1, 32, "mono")
    assert (multi.model.channels, multi.train.batch_size, multi.data.channel_mode) == (32, 4, "all")
    for config in (mono, multi):
        assert config.model.sample_rate == 24000 and config.data.segment_seconds == 1.0
        assert (config.train.epochs, config.train.updates_per_epoch) == (300, 2000)
        assert config.optim.lr == 3e-4 and config.optim.betas == (0.5, 0.9)
        losses = config.losses
        assert (losses.l1, losses.mel, losses.adv, losses.feat) == (0.1, 1.0, 3.0, 3.0)


def test_overrides_are_parsed_by_type():
    config = build_config(
        "1ch",
        "small",
        ["optim.lr=1e-4", "model.ratios=4,4,2", "model.causal=false", "data.root=none", "optim.betas=0.8,0.99"],
    )
    assert config.optim.lr == 1e-4
    assert config.model.ratios == (4, 4, 2)
    assert config.model.causal is False
    assert config.data.root is None
    assert config.optim.betas == (0.8, 0.99)


def test_unknown_key_names_valid_choices():
    with pytest.raises(KeyError, match="optim.lr"):
        build_config("1ch", overrides=["optim.learning_rate=1"])
    with pytest.raises(KeyError, match="valid sections"):
        build_config("1ch", overrides=["optimizer.lr=1"])


def test_wrong_type_and_wrong_choice_are_errors():
    with pytest.raises(ValueError, match="train.batch_size"):
        build_config("1ch", overrides=["train.batch_size=big"])
    with pytest.raises(ValueError, match="choose one of none, rvq"):
        build_config("1ch", overrides=["model.quantizer=vq"])
    with pytest.raises(ValueError, match="key=value"):
        build_config("1ch", overrides=["optim.lr"])


def test_save_and_load_round_trip(tmp_path):
    config = build_config("32ch", "small", ["model.quantizer=rvq"])
    config.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == config


def test_the_perceptual_measure_names_are_those_of_the_perceptual_module():
    assert tuple(MEASURES) == PERCEPTUAL_MEASURES
    with pytest.raises(ValueError, match="train.perceptual_measures: unknown mos; choose from visqol_audio"):
        build_config("1ch", overrides=["train.perceptual_measures=stoi,mos"])
