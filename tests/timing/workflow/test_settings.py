"""The workflow's settings (audioenc.timing.workflow.settings) and `audioenc workflow`'s settings arguments.

References: the dataclass defaults and the values written by hand in each case; a saved
settings file read back compared with ``==`` on the frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from audioenc.errors import UserError
from audioenc.timing.weak import CRNN_PRESETS, PRESET_FEATURES, CRNNConfig
from audioenc.timing.workflow.settings import SECTIONS, WorkflowSettings, resolve_settings, validate


def test_overrides_are_parsed_by_the_fields_type():
    settings = resolve_settings(
        overrides=[
            "weak.max_epochs=7",
            "weak.learning_rate=1e-3",
            "weak.patience=none",
            "weak.budget_seconds=12.5",
            "postprocess.thresholds=0.3,0.5",
            "probe.kind=conv",
            "run.max_clips=10,5,4",
            "features.f_max=none",
            "crnn.conv_channels=8,16,32",
            "crnn.freq_pool=4,4,1",
            "crnn.time_pool=1,1,1",  # one per block (WeakCRNN)
            "evaluation.onset_only_collars=0.1",
        ]
    )
    assert settings.weak.max_epochs == 7 and isinstance(settings.weak.max_epochs, int)
    assert settings.weak.learning_rate == 0.001
    assert settings.weak.patience is None and settings.weak.budget_seconds == 12.5
    assert settings.postprocess.thresholds == (0.3, 0.5)
    assert settings.probe.kind == "conv"
    assert settings.run.max_clips == (10, 5, 4)
    assert settings.features.f_max is None
    assert settings.crnn.conv_channels == (8, 16, 32)
    assert settings.evaluation.onset_only_collars == (0.1,)
    # Untouched keys keep their defaults.
    assert settings.weak.batch_size == WorkflowSettings().weak.batch_size
    assert settings.probe.hidden == WorkflowSettings().probe.hidden
    # with_value takes typed values too, and leaves the original alone (frozen dataclasses).
    base = WorkflowSettings()
    changed = base.with_value("weak.patience", 3)
    assert changed.weak.patience == 3 and base.weak.patience == 6


def test_a_crnn_preset_sets_the_crnn_and_its_features_and_explicit_values_still_win(tmp_path):
    default = resolve_settings()
    assert default.crnn.preset == "small" and default.crnn == CRNNConfig()  # today's CRNN, today's features
    dcase = resolve_settings(overrides=["crnn.preset=dcase"])
    assert dcase.crnn == CRNN_PRESETS["dcase"] and dcase.features == PRESET_FEATURES["dcase"]
    assert (dcase.features.n_mels, dcase.features.sample_rate, dcase.features.n_fft, dcase.features.hop_length) == (
        128,
        16000,
        2048,
        256,
    )
    assert dcase.weak == default.weak and dcase.postprocess == default.postprocess  # other sections untouched
    # Explicit values on top of the preset win, before or after it on the command line.
    tuned = resolve_settings(fast=True, overrides=["crnn.rnn_hidden=64", "crnn.preset=dcase", "features.f_min=20"])
    assert tuned.crnn == dataclasses.replace(CRNN_PRESETS["dcase"], rnn_hidden=64)
    assert tuned.features == dataclasses.replace(PRESET_FEATURES["dcase"], f_min=20.0)
    assert tuned.weak == WorkflowSettings.fast().weak  # --fast underneath the rest
    # The saved settings read back as the same run.
    saved = tmp_path / "settings.json"
    saved.write_text(tuned.to_json())
    assert resolve_settings(config_file=saved) == tuned
    # 7 halvings need 128 bands: the preset with 64 is refused, naming both settings.
    with pytest.raises(UserError, match="features.n_mels=64 is not divisible by the CRNN's frequency reduction 128"):
        resolve_settings(overrides=["crnn.preset=dcase", "features.n_mels=64"])


def test_per_class_postprocessing_is_off_by_default():
    assert resolve_settings().postprocess.per_class is False
    assert resolve_settings(overrides=["postprocess.per_class=true"]).postprocess.per_class is True


def test_a_value_of_the_wrong_type_names_the_key():
    with pytest.raises(ValueError, match=r"Bad value 'many' for weak\.max_epochs"):
        resolve_settings(overrides=["weak.max_epochs=many"])
    with pytest.raises(ValueError, match="section.key=value"):
        resolve_settings(overrides=["weak.max_epochs"])


def test_unknown_sections_and_keys_list_the_valid_ones():
    with pytest.raises(KeyError) as section_error:
        resolve_settings(overrides=["bogus.key=1"])
    message = section_error.value.args[0]
    assert "section bogus;" in message and all(name in message for name in SECTIONS)
    assert set(SECTIONS) == {
        "features",
        "crnn",
        "weak",
        "augment",
        "scorer",
        "probe",
        "rule",
        "postprocess",
        "evaluation",
        "run",
        "encoder",
    }
    with pytest.raises(KeyError) as key_error:
        resolve_settings(overrides=["weak.epochs=3"])
    message = key_error.value.args[0]
    assert "Unknown workflow settings key weak.epochs;" in message
    assert all(f"weak.{field.name}" in message for field in dataclasses.fields(WorkflowSettings().weak))


def test_a_json_file_with_some_sections_applies_and_overrides_come_after(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps(
            {
                "weak": {"max_epochs": 60, "patience": None},
                "postprocess": {"thresholds": [0.3, 0.5], "median_seconds": [0.0]},
            }
        )
    )
    settings = resolve_settings(config_file=path)
    assert settings.weak.max_epochs == 60 and settings.weak.patience is None
    assert settings.postprocess.thresholds == (0.3, 0.5) and settings.postprocess.median_seconds == (0.0,)
    assert settings.probe == WorkflowSettings().probe and settings.run == WorkflowSettings().run
    # On the fast defaults, and with an override of a key the file also sets: the override wins.
    layered = resolve_settings(fast=True, config_file=str(path), overrides=["weak.max_epochs=5"])
    assert layered.weak.max_epochs == 5 and layered.weak.patience is None
    assert layered.postprocess.thresholds == (0.3, 0.5)
    assert layered.crnn == WorkflowSettings.fast().crnn  # the fast base under the file


def test_a_bad_json_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"weak": {"max_epochs": 60,}')
    with pytest.raises(ValueError, match="broken.json: not JSON"):
        resolve_settings(config_file=broken)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        resolve_settings(config_file=tmp_path / "absent.json")
    listed = tmp_path / "listed.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="listed.json: expected an object of sections"):
        resolve_settings(config_file=listed)
    flat = tmp_path / "flat.json"
    flat.write_text('{"weak": 3}')
    with pytest.raises(ValueError, match="flat.json: section 'weak' must be an object"):
        resolve_settings(config_file=flat)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"weak": {"epochs": 3}}')
    with pytest.raises(KeyError, match="weak.max_epochs"):
        resolve_settings(config_file=unknown)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("postprocess.thresholds=0.0,0.5", r"postprocess\.thresholds must be a finite number > 0 and < 1; got 0\.0"),
        ("postprocess.thresholds=0.5,1.0", r"got 1\.0"),
        ("probe.kind=bogus", "probe.kind='bogus'; choose frame or conv"),
        ("weak.max_epochs=0", r"weak\.max_epochs must be an integer >= 1; got 0"),
        ("weak.patience=0", r"weak\.patience must be an integer >= 1; got 0\. none \(unset\) works too"),
        ("run.workers=0", r"run\.workers must be an integer >= 1"),
        ("augment.keep_teacher=true", r"augment\.keep_teacher=true needs a teacher to keep: set augment\.mean_teacher"),
        ("crnn.rnn_cell=rnn", "crnn.rnn_cell='rnn'; choose one of gru, lstm"),
    ],
)
def test_validate_rejects_bad_values(override, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(overrides=[override])


def test_validate_needs_a_candidate_of_each_kind():
    empty = WorkflowSettings().with_mapping({"postprocess": {"thresholds": []}}, "test")
    with pytest.raises(ValueError, match="at least one value each"):
        validate(empty)
    assert validate(WorkflowSettings()) == WorkflowSettings()


def test_save_then_load_round_trips(tmp_path):
    settings = resolve_settings(
        fast=True,
        overrides=[
            "weak.patience=3",
            "weak.budget_seconds=90.5",
            "postprocess.thresholds=0.25,0.5",
            "probe.kind=conv",
            "features.f_max=8000",
            "run.max_clips=none",
            "evaluation.onset_only_collars=0.2,0.05,0.1",
        ],
    )
    path = settings.save(tmp_path / "run" / "settings.json")
    assert path.is_file() and json.loads(path.read_text()) == settings.to_dict()
    assert resolve_settings(config_file=path) == settings  # on the full defaults: every key comes from the file
    assert resolve_settings(fast=True, config_file=path) == settings
    default_path = WorkflowSettings().save(tmp_path / "defaults.json")
    assert resolve_settings(fast=True, config_file=default_path) == WorkflowSettings()


def test_the_command_line_passes_config_and_overrides_through(tmp_path, monkeypatch):
    import audioenc.timing.workflow as workflow
    from audioenc.cli import main

    received = {}

    def fake_run_workflow(
        data, encoder, out, seed, fast=False, *, settings=None, encoder_weights=None, log=None, overwrite=False
    ):
        received.update(data=data, out=out, seed=seed, fast=fast, settings=settings)
        return {}

    monkeypatch.setattr(workflow, "run_workflow", fake_run_workflow)
    config = tmp_path / "conf.json"
    config.write_text(json.dumps({"weak": {"max_epochs": 9, "patience": 7}, "probe": {"kind": "conv"}}))
    status = main(
        [
            "workflow",
            "--config",
            str(config),
            "--fast",
            "--out",
            str(tmp_path / "run"),
            "--seed",
            "4",
            "--workers",
            "3",
            "weak.patience=3",
            "postprocess.thresholds=0.3,0.5",
        ]
    )
    assert status == 0
    settings = received["settings"]
    assert received["fast"] and received["seed"] == 4 and received["out"] == str(tmp_path / "run")
    assert settings.weak.max_epochs == 9 and settings.probe.kind == "conv"  # from the file
    assert settings.weak.patience == 3 and settings.postprocess.thresholds == (0.3, 0.5)  # overrides after it
    assert settings.run.workers == 3  # --workers
    assert settings.crnn == WorkflowSettings.fast().crnn  # --fast underneath


def test_the_command_line_reports_a_bad_key_without_running(tmp_path, monkeypatch, capsys):
    import audioenc.timing.workflow as workflow
    from audioenc.cli import main

    calls = []
    monkeypatch.setattr(workflow, "run_workflow", lambda *args, **kwargs: calls.append(args))
    assert main(["workflow", "--out", str(tmp_path / "run"), "bogus.key=1"]) == 2
    error = capsys.readouterr().err
    assert calls == [] and "Unknown workflow settings section bogus;" in error and "postprocess" in error


def test_a_fixed_length_tuple_needs_every_value():
    assert resolve_settings(overrides=["run.max_clips=10,4,4"]).run.max_clips == (10, 4, 4)
    with pytest.raises(ValueError, match="expected 3 comma-separated values"):
        resolve_settings(overrides=["run.max_clips=1,2"])


def test_a_yaml_file_works_as_a_json_one(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("weak:\n  max_epochs: 60\n  patience: null\npostprocess:\n  thresholds: [0.3, 0.5]\n")
    settings = resolve_settings(fast=True, config_file=path)
    assert settings.weak.max_epochs == 60 and settings.weak.patience is None
    assert settings.postprocess.thresholds == (0.3, 0.5) and settings.crnn == WorkflowSettings.fast().crnn


def test_the_augment_section_is_off_by_default_and_each_option_switches_alone():
    assert not WorkflowSettings().augment.active and not WorkflowSettings.fast().augment.active
    for override in (
        "augment.mixup_alpha=0.2",
        "augment.time_masks=2",
        "augment.freq_masks=1",
        "augment.shift_frames=10",
        "augment.gain_db=6",
        "augment.mean_teacher=true",
    ):
        augment = resolve_settings(fast=True, overrides=[override]).augment
        assert augment.active
        changed = [f.name for f in dataclasses.fields(augment) if getattr(augment, f.name) != f.default]
        assert changed == [override.split("=")[0].split(".")[1]]
    with pytest.raises(UserError, match=r"augment\.ema_decay"):
        resolve_settings(overrides=["augment.ema_decay=1.5"])
