"""The workflow's ``encoder`` settings section and how it reaches load_encoder (settings.EncoderSettings,
run.run_workflow, ``audioenc workflow``).

References: the values written by hand in each case; what the loaded encoder reports about itself
(its layer, its hop) for the options that reached it; the steps are replaced by a recorder where only
the loading is under test.
"""

from __future__ import annotations

import json

import pytest

from audioenc.cli import main
from audioenc.errors import UserError
from audioenc.timing.workflow import run as run_module
from audioenc.timing.workflow.settings import EncoderSettings, WorkflowSettings, resolve_settings
from tests.timing import hf_tiny


@pytest.fixture(scope="module")
def wav2vec2(tmp_path_factory):
    return hf_tiny.wav2vec2(tmp_path_factory.mktemp("snapshot") / "wav2vec2")


def test_defaults_pass_no_option():
    settings = resolve_settings()
    assert settings.encoder == EncoderSettings()
    assert (settings.encoder.layer, settings.encoder.hop_ms) == ("default", 10.0)
    assert settings.encoder.options() == {}


def test_overrides_and_files_become_load_encoder_options(tmp_path):
    assert resolve_settings(overrides=["encoder.layer=3"]).encoder.options() == {"layer": 3}
    assert resolve_settings(overrides=["encoder.layer=all"]).encoder.options() == {"layer": "all"}
    both = resolve_settings(overrides=["encoder.layer=quantized", "encoder.bandwidth=1.5"]).encoder.options()
    assert both == {"layer": "quantized", "bandwidth": 1.5}
    windows = resolve_settings(overrides=["encoder.max_seconds=2", "encoder.overlap_seconds=0.5"]).encoder
    assert windows.options() == {"max_seconds": 2.0, "overlap_seconds": 0.5}
    assert resolve_settings(overrides=["encoder.hop_ms=5"]).encoder.options() == {"hop_ms": 5.0}
    assert resolve_settings(overrides=["encoder.layer=default"]).encoder.options() == {}
    # A number from a settings file is the same layer as one typed on the command line.
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"encoder": {"layer": 3}}))
    assert resolve_settings(config_file=config).encoder.layer == 3
    # settings.json keeps the section, and reads back equal.
    saved = resolve_settings(overrides=["encoder.layer=all", "encoder.hop_ms=12.5"]).save(tmp_path / "saved.json")
    assert json.loads(saved.read_text())["encoder"]["layer"] == "all"
    assert resolve_settings(config_file=saved).encoder == EncoderSettings(layer="all", hop_ms=12.5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("encoder.layer=-1", r"encoder\.layer must be an integer >= 0"),
        ("encoder.layer=2.5", r"encoder\.layer='2\.5'; give default, all, latent or quantized"),
        ("encoder.layer=last", r"encoder\.layer='last'"),
        ("encoder.bandwidth=0", r"encoder\.bandwidth must be a finite number > 0"),
        ("encoder.max_seconds=-1", r"encoder\.max_seconds must be a finite number > 0"),
        ("encoder.overlap_seconds=nan", r"encoder\.overlap_seconds must be a finite number >= 0"),
        ("encoder.hop_ms=0.01", r"encoder\.hop_ms: CREPE hop_ms=0\.01 is not a positive whole number of samples"),
    ],
)
def test_bad_values_name_the_setting(override, message):
    with pytest.raises(UserError, match=message):
        resolve_settings(overrides=[override])


def _record_steps(monkeypatch) -> list:
    seen = []

    def record(data, encoder, handle, out, *rest):
        seen.append(handle)
        return {}

    monkeypatch.setattr(run_module, "_run_steps", record)
    return seen


def test_the_command_line_options_reach_the_encoder(wav2vec2, tmp_path, monkeypatch):
    seen = _record_steps(monkeypatch)
    assert main(["workflow", "--encoder", str(wav2vec2), "--out", str(tmp_path / "a"), "encoder.layer=all"]) == 0
    assert main(["workflow", "--encoder", "crepe-tiny", "--out", str(tmp_path / "b"), "encoder.hop_ms=5"]) == 0
    assert main(["workflow", "--encoder", str(wav2vec2), "--out", str(tmp_path / "c")]) == 0
    layers = seen[0].describe()["pretrained"]
    assert layers["layer"] == "all (0-2)" and layers["layers"] == 3 and seen[0].options == {"layer": "all"}
    assert seen[1].kind == "crepe" and seen[1].model.hop_samples == 80 and seen[1].model.frame_rate == 200.0
    assert seen[2].options == {} and seen[2].describe()["pretrained"]["layer_is_default"] is True


def test_an_option_the_encoder_cannot_take_exits_2_before_the_run_folder(saved_crnn, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["workflow", "--encoder", saved_crnn, "--out", str(out), "encoder.layer=3"]) == 2
    error = capsys.readouterr().err
    assert "encoder.layer=3" in error and "kind weak_crnn" in error and error.count("\n") == 1
    assert main(["workflow", "--out", str(out), "encoder.layer=3"]) == 2  # no --encoder: step 5's own CRNN
    error = capsys.readouterr().err
    assert "encoder.layer=3 set but no --encoder given" in error and error.count("\n") == 1
    assert not out.exists()


def test_run_workflow_takes_the_options_from_its_settings(monkeypatch, tmp_path):
    seen = _record_steps(monkeypatch)
    settings = WorkflowSettings.fast().with_value("encoder.hop_ms", 20)
    run_module.run_workflow(encoder="crepe-full", out=tmp_path / "run", settings=settings)
    assert seen[0].model.capacity == "full" and seen[0].model.hop_ms == 20.0
