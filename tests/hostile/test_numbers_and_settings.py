"""Hostile numbers: every numeric option, train config field and workflow setting has a range.

Each refusal exits 2 with one line naming the option or setting and its allowed range, before any
work starts and before any file is written (the output folder is compared byte for byte). Saved
settings and configs are strict JSON: a NaN can never reach ``settings.json`` or a run's config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.cli import main
from audioenc.config import Config, build_config
from audioenc.errors import UserError
from audioenc.timing.workflow.settings import SECTIONS, EvaluationSettings, WorkflowSettings, resolve_settings
from tests.hostile.test_cli_inputs import assert_one_line_error


def run_cli(argv: list[str]) -> int:
    """The exit status of ``audioenc ARGV`` (argparse's refusals exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code)


def folder_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes (what "left unchanged" means here)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def workspace(tmp_path):
    """A folder holding an audio file and an earlier output, hashed by the tests before and after."""
    sf.write(tmp_path / "in.wav", np.zeros(2400, dtype=np.float32), 24000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.txt").write_text("an earlier result\n")
    return tmp_path


def _tiny_model(folder: Path, *overrides: str) -> Path:
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    config = build_config("1ch", "small", ["model.n_filters=2", "model.dimension=8", "model.lstm=0", *overrides]).model
    return export_model(folder / "model", "model_best", CodecModel.from_config(config), config)


# ------------------------------------------------------------------ command-line options

OPTION_CASES = [
    # (command words, option, bad value)
    (["encode", "{ws}/in.wav", "{ws}/out/x.safetensors", "--model", "{ws}/m"], "--chunk-seconds", "nan"),
    (["encode", "{ws}/in.wav", "{ws}/out/x.safetensors", "--model", "{ws}/m"], "--chunk-seconds", "0"),
    (["encode", "{ws}/in.wav", "{ws}/out/x.safetensors", "--model", "{ws}/m"], "--bandwidth", "inf"),
    (["encode", "{ws}/in.wav", "{ws}/out/x.safetensors", "--model", "{ws}/m"], "--bandwidth", "-6"),
    (["decode", "{ws}/in.safetensors", "{ws}/out/x.wav", "--model", "{ws}/m"], "--chunk-seconds", "nan"),
    (["decode", "{ws}/in.safetensors", "{ws}/out/x.wav", "--model", "{ws}/m"], "--chunk-seconds", "-2"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--max-seconds", "0"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--max-seconds", "nan"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--resamples", "-5"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--max-files", "-1"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--max-files", "0"),
    (["eval", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--max-files", "1.5"),
    (["report", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--seconds", "nan"),
    (["report", "{ws}/m", "--data", "{ws}", "--out", "{ws}/out"], "--files", "0"),
    (["scan", "{ws}"], "--channels", "0"),
    (["scan", "{ws}"], "--min-seconds", "nan"),
    (["scan", "{ws}"], "--min-seconds", "-1"),
    (["synth", "eigenscape-like", "{ws}/out"], "--scenes", "0"),
    (["synth", "eigenscape-like", "{ws}/out"], "--seconds", "inf"),
    (["synth", "eigenscape-like", "{ws}/out"], "--seed", "-1"),
    (["synth", "events", "{ws}/out"], "--clips", "2"),
    (["synth", "events", "{ws}/out"], "--seed", "-1"),
    (["train", "--1ch", "--run-dir", "{ws}/out"], "--epochs", "0"),
    (["train", "--1ch", "--run-dir", "{ws}/out"], "--updates-per-epoch", "1.5"),
    (["train", "--1ch", "--run-dir", "{ws}/out"], "--batch-size", "-1"),
    (["train", "--1ch", "--run-dir", "{ws}/out"], "--segment-seconds", "nan"),
    (["demo", "--short", "--out", "{ws}/out"], "--seed", "-1"),
    (["workflow", "--fast", "--out", "{ws}/out"], "--seed", "-1"),
    (["workflow", "--fast", "--out", "{ws}/out"], "--seed", "1e30"),
    (["workflow", "--fast", "--out", "{ws}/out"], "--workers", "0"),
]


@pytest.mark.parametrize(
    ("words", "option", "value"),
    OPTION_CASES,
    ids=[f"{words[0]}{option}={value}" for words, option, value in OPTION_CASES],
)
def test_a_numeric_option_out_of_range_is_refused_before_any_work(words, option, value, workspace, capsys):
    argv = [word.format(ws=workspace) for word in words] + [option, value]
    before = folder_hashes(workspace)
    assert run_cli(argv) == 2
    command = " ".join(words[:2]) if words[0] == "synth" else words[0]
    line = assert_one_line_error(capsys, command, option, "must be", repr(value))
    assert "--help" in line  # says where the allowed values are described
    assert folder_hashes(workspace) == before


def test_every_numeric_option_of_every_command_has_a_range():
    """No ``type=int`` / ``type=float`` is left: each numeric option goes through validation.number."""
    from audioenc.cli import build_parser

    unchecked = []
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if action.choices and isinstance(action.choices, dict):
                parsers.extend(action.choices.values())
            if action.type in (int, float):
                unchecked.append(f"{parser.prog} {action.option_strings}")
    assert not unchecked


def test_a_bandwidth_the_model_cannot_give_is_one_line(workspace, capsys):
    model = _tiny_model(workspace, "model.quantizer=rvq", "model.n_q=2", "model.bins=4")
    before = folder_hashes(workspace)
    assert (
        run_cli(
            [
                "encode",
                str(workspace / "in.wav"),
                str(workspace / "out" / "x.safetensors"),
                "--model",
                str(model),
                "--bandwidth",
                "1000",
            ]
        )
        == 2
    )
    assert_one_line_error(capsys, "encode", "--bandwidth 1000", "choose a bandwidth")
    assert folder_hashes(workspace) == before


# ------------------------------------------------------------------ the train config


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("optim.lr=nan", "optim.lr must be a finite number > 0; got nan"),
        ("optim.lr=-1e-3", "optim.lr must be a finite number > 0"),
        ("optim.betas=0.5,1", "optim.betas must be a finite number >= 0 and < 1; got 1.0"),
        ("model.n_filters=0", "model.n_filters must be an integer >= 1; got 0"),
        ("model.bins=1", "model.bins must be an integer >= 2"),
        ("losses.balancer_ema_decay=1", "losses.balancer_ema_decay must be a finite number >= 0 and < 1"),
        ("losses.mel=inf", "losses.mel must be a finite number >= 0; got inf"),
        ("data.segment_seconds=inf", "data.segment_seconds must be a finite number > 0"),
        ("train.seed=-1", "train.seed must be an integer >= 0"),
        ("train.log_every=0", "train.log_every must be an integer >= 1"),
        ("discriminator.win_lengths=512,256,4096", "win_lengths: a window of 4096 is longer than its n_fft"),
    ],
)
def test_a_train_config_number_out_of_range_is_refused_before_the_run_folder(override, needle, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "--1ch",
        "--preset",
        "small",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--logger",
        "none",
        override,
    ]
    assert run_cli(argv) == 2
    assert_one_line_error(capsys, "train", needle)
    assert not run_dir.exists()


def _numeric_keys(sections: typing.Iterable[tuple[str, object]]) -> list[str]:
    """``section.field`` of every field whose type holds a number (int, float, tuples of them, optional ones)."""
    keys = []
    for section_name, section in sections:
        hints = typing.get_type_hints(type(section))
        for field in dataclasses.fields(section):
            text = str(hints[field.name])
            if ("int" in text or "float" in text) and hints[field.name] is not bool:
                keys.append(f"{section_name}.{field.name}")
    return keys


CONFIG_KEYS = _numeric_keys((field.name, getattr(Config(), field.name)) for field in dataclasses.fields(Config))
SETTINGS_KEYS = _numeric_keys((name, getattr(WorkflowSettings(), name)) for name in SECTIONS)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_every_numeric_config_field_is_finite(key, value):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        build_config("1ch", "small", [f"{key}={value}"])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", SETTINGS_KEYS)
def test_every_numeric_workflow_setting_is_finite(key, value):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        resolve_settings(fast=True, overrides=[f"{key}={value}"])


def test_the_key_lists_are_not_empty():
    assert "optim.lr" in CONFIG_KEYS and "model.ratios" in CONFIG_KEYS and len(CONFIG_KEYS) >= 35
    assert "evaluation.onset_collar" in SETTINGS_KEYS and "run.max_clips" in SETTINGS_KEYS and len(SETTINGS_KEYS) >= 40


# ------------------------------------------------------------------ the workflow settings


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("crnn.rnn_hidden=0", "crnn.rnn_hidden must be an integer >= 1; got 0"),
        ("features.n_mels=0", "features.n_mels must be an integer >= 1; got 0"),
        ("features.n_mels=48", "features.n_mels=48 is not divisible"),
        ("features.f_max=20000", "features.f_max=20000 lies above Nyquist"),
        ("features.hop_length=241", "features.n_fft - features.hop_length must be even"),
        ("crnn.freq_pool=4", "crnn.freq_pool and crnn.time_pool need one value per block"),
        ("crnn.dropout=1", "crnn.dropout must be a finite number >= 0 and < 1"),
        ("crnn.preset=huge", "crnn.preset='huge'; choose one of small, dcase"),
        ("crnn.conv_block=tanh", "crnn.conv_block='tanh'; choose one of relu, glu"),
        ("crnn.rnn_layers=0", "crnn.rnn_layers must be an integer >= 1; got 0"),
        ("crnn.stem_channels=-1", "crnn.stem_channels must be an integer >= 0; got -1"),
        ("probe.context_frames=4", "probe.context_frames must be odd"),
        ("postprocess.median_seconds=nan", "postprocess.median_seconds must be a finite number >= 0; got nan"),
        ("postprocess.fixed_threshold=1", "postprocess.fixed_threshold must be a finite number > 0 and < 1"),
        ("evaluation.onset_collar=nan", "evaluation.onset_collar must be a finite number >= 0; got nan"),
        ("evaluation.pooling_ap_margin=2", "evaluation.pooling_ap_margin must be a finite number >= 0 and <= 1"),
        ("weak.learning_rate=-1", "weak.learning_rate must be a finite number > 0; got -1.0"),
        ("weak.patience=0", "none (unset) works too"),
        ("run.plot_clips=-1", "run.plot_clips must be an integer >= 1; got -1"),
        ("run.max_clips=10,0,5", "run.max_clips must be an integer >= 1; got 0"),
        ("rule.gain_margin=-0.1", "rule.gain_margin must be a finite number >= 0 and <= 1"),
        ("scorer.pool_fit_steps=0", "scorer.pool_fit_steps must be an integer >= 1"),
    ],
)
def test_a_workflow_setting_out_of_range_is_refused_before_the_run_folder(override, needle, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["workflow", "--fast", "--out", str(out), override]) == 2
    assert_one_line_error(capsys, "workflow", needle)
    assert not out.exists()


def test_a_settings_file_with_a_nan_is_refused(tmp_path, capsys):
    """Python's json reads the token NaN; the settings layer must not take it."""
    config = tmp_path / "settings.json"
    config.write_text('{"evaluation": {"onset_collar": NaN}}\n')
    out = tmp_path / "run"
    assert run_cli(["workflow", "--fast", "--out", str(out), "--config", str(config)]) == 2
    assert_one_line_error(capsys, "workflow", "evaluation.onset_collar", "got nan")
    assert not out.exists()


def test_saved_settings_and_configs_are_strict_json(tmp_path):
    """A NaN that got past the checks (a library caller's own settings) is an error, never the token NaN."""
    bad = WorkflowSettings(evaluation=EvaluationSettings(onset_collar=math.nan))
    with pytest.raises(ValueError):
        bad.save(tmp_path / "settings.json")
    assert not (tmp_path / "settings.json").exists()
    config = Config()
    config.optim.lr = math.inf
    with pytest.raises(ValueError):
        config.save(tmp_path / "config.json")
    assert not (tmp_path / "config.json").exists()
    good = WorkflowSettings.fast().save(tmp_path / "good.json")
    json.loads(good.read_text(), parse_constant=lambda token: pytest.fail(f"non-JSON token {token}"))


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize(
    ("argv", "command", "needle"),
    [
        (
            ["info", "--1ch", "data.bogus=1"],
            "info",
            "Unknown config key data.bogus; use one of the valid keys: data.root",
        ),
        (["info", "--1ch", "bogus.key=1"], "info", "Unknown config section bogus; valid sections: model"),
        (
            ["workflow", "--fast", "weak.bogus=1"],
            "workflow",
            "Unknown workflow settings key weak.bogus; use one of the valid keys",
        ),
        (["workflow", "--fast", "bogus.key=1"], "workflow", "Unknown workflow settings section bogus; valid sections"),
    ],
)
def test_unknown_keys_are_named_without_stray_quotes(argv, command, needle, tmp_path, capsys):
    assert run_cli([*argv, *(["--out", str(tmp_path / "run")] if command == "workflow" else [])]) == 2
    line = assert_one_line_error(capsys, command, needle)
    assert "'" not in line
    assert not (tmp_path / "run").exists()


@pytest.fixture
def hugging_face_folder(tmp_path):
    """What `huggingface-cli download facebook/encodec_24khz` leaves: config.json (model_type encodec) + weights."""
    folder = tmp_path / "encodec_24khz"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "encodec", "sampling_rate": 24000}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


@pytest.mark.parametrize("target", ["folder", "weights"])
def test_init_from_a_hugging_face_folder_says_to_import_it(target, hugging_face_folder, tmp_path, capsys):
    source = hugging_face_folder if target == "folder" else hugging_face_folder / "model.safetensors"
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "--1ch",
        "--preset",
        "small",
        "--init-from",
        str(source),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--logger",
        "none",
    ]
    assert run_cli(argv) == 2
    assert_one_line_error(capsys, "train", str(source), f"audioenc import-hf {hugging_face_folder} RUN")
    assert not run_dir.exists()


def test_encode_with_a_hugging_face_folder_says_to_import_it(hugging_face_folder, workspace, capsys):
    before = folder_hashes(workspace)
    assert (
        run_cli(
            [
                "encode",
                str(workspace / "in.wav"),
                str(workspace / "out" / "x.safetensors"),
                "--model",
                str(hugging_face_folder),
            ]
        )
        == 2
    )
    assert_one_line_error(capsys, "encode", "import-hf")
    assert folder_hashes(workspace) == before


@pytest.mark.parametrize(
    ("argv", "command", "needle"),
    [
        (["info", "--1ch", "model.n_q=abc"], "info", "model.n_q (expected int): expected an integer such as 8"),
        (["info", "--1ch", "optim.lr=fast"], "info", "optim.lr (expected float): expected a number such as 0.5"),
        (["workflow", "--fast", "--seed", "4294967296"], "workflow", "<= 4294967295; got '4294967296'"),
    ],
)
def test_a_value_that_is_no_number_says_what_to_give(argv, command, needle, tmp_path, capsys):
    assert run_cli([*argv, *(["--out", str(tmp_path / "run")] if command == "workflow" else [])]) == 2
    assert_one_line_error(capsys, command, needle)
    assert not (tmp_path / "run").exists()
