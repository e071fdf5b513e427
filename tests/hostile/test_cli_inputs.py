"""Hostile input at the command line: every user mistake exits 2 with one line naming what is wrong.

Issue 15, items 1, 5 and 6. Each case runs the real CLI in-process and checks the exit status, that
stderr is exactly one line starting ``audioenc CMD: error:``, that it names the file or the flag,
and that no traceback is printed. Cases that need a damaged model or container live beside this
module (``test_decode_container.py``, ``test_resume_guards.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audioenc.audio.formats import STRONG_COLUMNS, read_event_split, read_strong_tsv
from audioenc.cli import build_parser, main, parse_arguments
from audioenc.core.distributed import resolve_device
from audioenc.errors import UserError


def assert_one_line_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"audioenc {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder\n")
    return path


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny exported continuous codec (weights + json)."""
    from audioenc.config import build_config
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    config = build_config("1ch", "small", ["model.n_filters=2", "model.dimension=8", "model.lstm=0"]).model
    return export_model(tmp_path / "model", "model_best", CodecModel.from_config(config), config)


# ------------------------------------------------------------------ item 1: data folders, devices


@pytest.mark.parametrize("kind", ["file", "missing"])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_data_that_is_not_a_folder(command, kind, tmp_path, a_file, tiny_model, capsys):
    data = a_file if kind == "file" else tmp_path / "no_such_folder"
    if command == "train":
        argv = [
            "train",
            "--1ch",
            "--preset",
            "small",
            "--data",
            str(data),
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--logger",
            "none",
        ]
    else:
        argv = ["eval", str(tiny_model), "--data", str(data), "--device", "cpu"]
    assert main(argv) == 2
    line = assert_one_line_error(capsys, command, str(data))
    assert ("is a file" in line) if kind == "file" else ("does not exist" in line)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("tpu", "not a device torch knows"),
        ("banana", "not a device torch knows"),
        ("cuda", "sees none"),
        ("cuda:3", "sees none"),
    ],
)
def test_device_names_are_checked(name, needle, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=needle):
        resolve_device(name)


def test_device_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("command", ["train", "eval", "encode", "decode"])
@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_every_command_refuses_a_device_it_cannot_use(command, device, tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    audio = tmp_path / "in.wav"
    sf.write(audio, np.zeros(2400, dtype=np.float32), 24000)
    argv = {
        "train": [
            "train",
            "--1ch",
            "--preset",
            "small",
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--logger",
            "none",
        ],
        "eval": ["eval", str(tiny_model), "--data", str(tmp_path)],
        "encode": ["encode", str(audio), str(tmp_path / "out.safetensors"), "--model", str(tiny_model)],
        "decode": ["decode", str(tmp_path / "in.safetensors"), str(tmp_path / "out.wav"), "--model", str(tiny_model)],
    }[command]
    if command == "decode":  # a valid container, so that the device is what fails
        assert (
            main(["encode", str(audio), str(tmp_path / "in.safetensors"), "--model", str(tiny_model), "--quiet"]) == 0
        )
        capsys.readouterr()
    assert main([*argv, "--device", device]) == 2
    assert_one_line_error(capsys, command, f"--device {device}")
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "out.safetensors").exists()


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    """Only user errors are turned into one line; an unexpected exception propagates."""
    import audioenc.commands.info as info

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["info", "--1ch"])


def test_unknown_override_key_is_one_line(capsys):
    assert main(["info", "--1ch", "model.n_filter=3"]) == 2
    assert_one_line_error(capsys, "info", "model.n_filter")


# ------------------------------------------------------------------ item 6: overrides anywhere


def test_overrides_may_come_after_options():
    parser = build_parser()
    args = parse_arguments(
        parser,
        [
            "train",
            "--1ch",
            "--preset",
            "small",
            "model.n_filters=16",
            "--resume",
            "optim.lr=1e-4",
            "--epochs",
            "2",
            "train.seed=3",
        ],
    )
    assert args.resume and args.epochs == 2
    assert args.overrides == ["model.n_filters=16", "optim.lr=1e-4", "train.seed=3"]


def test_a_stray_word_is_named(capsys):
    assert main(["info", "--1ch", "--quantizer", "rvq", "oops"]) == 2
    assert_one_line_error(capsys, "info", "'oops'", "key=value")


def test_an_unknown_option_is_still_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(build_parser(), ["train", "--1ch", "model.n_q=4", "--bogus"])
    assert exit_info.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_overrides_for_a_command_without_them_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(build_parser(), ["scan", "somewhere", "model.n_q=3"])
    assert exit_info.value.code == 2
    assert "model.n_q=3" in capsys.readouterr().err


# ------------------------------------------------------------------ item 5: TSVs with a byte-order mark


def _strong_rows(path, rows, bom: bool):
    text = "\t".join(STRONG_COLUMNS) + "\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


@pytest.mark.parametrize("bom", [False, True])
def test_strong_tsv_with_byte_order_mark_reads_like_without(bom, tmp_path):
    path = tmp_path / "strong.tsv"
    _strong_rows(path, [("a.wav", 0.5, 1.0, "dog"), ("b.wav", 0.0, 0.25, "cat")], bom)
    events, issues = read_strong_tsv(path, durations={"a.wav": 2.0, "b.wav": 2.0})
    assert not [issue for issue in issues if issue.action == "error"], issues
    assert [(e.onset, e.offset, e.label) for e in events["a.wav"]] == [(0.5, 1.0, "dog")]
    assert [(e.onset, e.offset, e.label) for e in events["b.wav"]] == [(0.0, 0.25, "cat")]


def test_a_rejected_strong_tsv_means_no_strong_labels(tmp_path):
    """A strong TSV rejected whole must not turn into 'strong labels: yes, and no events anywhere'."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(audio / name, np.zeros(1600, dtype=np.float32), 16000)
    strong = tmp_path / "strong.tsv"
    strong.write_text("filename\tonset\tend\tevent_label\na.wav\t0.1\t0.2\tdog\n")  # 'end' is not a column
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\na.wav\tdog\nb.wav\t\n")
    split = read_event_split(audio, name="test", strong_tsv=strong, weak_tsv=weak)
    assert split.strong is None
    assert any("rejected whole" in issue.message for issue in split.issues)
    assert split.weak["a.wav"] == ("dog",)
