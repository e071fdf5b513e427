"""Hostile input to the timing workflow: corpora, label files, user encoder modules, text files.

Refusals exit 2 with one line naming the input, run before the run folder is touched (its files are
hashed before and after); clips the workflow cannot use are left out and listed instead of stopping it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio.formats import Event, read_strong_tsv
from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.cli import main
from audioenc.errors import UserError
from audioenc.textfiles import read_json, read_text, read_yaml
from audioenc.timing.boundaries import psds
from audioenc.timing.encoders import encoder_embeddings, load_encoder
from audioenc.timing.workflow.data import load_workflow_data
from tests.hostile.test_cli_inputs import assert_one_line_error


@pytest.fixture(scope="module")
def base_corpus(tmp_path_factory) -> Path:
    return synthesize_event_corpus(tmp_path_factory.mktemp("base"), (8, 4, 4), seed=5)


@pytest.fixture
def corpus(base_corpus, tmp_path) -> Path:
    """A private copy of the tiny corpus to damage."""
    return Path(shutil.copytree(base_corpus, tmp_path / "corpus"))


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    """A run folder holding an earlier run's files (what a refusal must leave as it was)."""
    out = tmp_path / "run"
    (out / "00_data").mkdir(parents=True)
    (out / "00_data" / "data.json").write_text('{"earlier": true}\n')
    (out / "report.md").write_text("# earlier report\n")
    return out


def tree_hash(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".audioenc.lock"
    }


def refuse(capsys, argv: list[str], out: Path, *needles: str) -> str:
    """Run ``audioenc workflow`` expecting a one-line refusal that leaves ``out`` byte-identical."""
    before = tree_hash(out)
    assert main(["workflow", *argv, "--out", str(out), "--overwrite", "--fast"]) == 2
    line = assert_one_line_error(capsys, "workflow", *needles)
    assert tree_hash(out) == before
    return line


def rewrite_rows(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(change(line) for line in lines[1:])]) + "\n")


# ------------------------------------------------------------------ text files (one reader)


def test_read_text_utf8_with_and_without_bom(tmp_path):
    plain, bom = tmp_path / "a.tsv", tmp_path / "b.tsv"
    plain.write_bytes("filename\tévent\n".encode())
    bom.write_bytes(b"\xef\xbb\xbf" + "filename\tévent\n".encode())
    assert read_text(plain, "label file") == read_text(bom, "label file") == "filename\tévent\n"


def test_read_text_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("filename\ncaf\xe9.wav\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.tsv is not UTF-8 text \(byte 12"):
        read_text(path, "label file")


def test_read_text_recognises_a_wav(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, np.zeros(100, "float32"), 16000)
    with pytest.raises(UserError, match="clip.wav is a WAV .* not a text file"):
        read_text(path, "label file")


def test_yaml_and_json_parse_errors_are_one_line_with_position(tmp_path):
    bad_yaml, bad_json = tmp_path / "c.yaml", tmp_path / "c.json"
    bad_yaml.write_text("data:\n  strong_tsv: [unclosed\n")
    bad_json.write_text('{"weak": {"max_epochs": }}')
    with pytest.raises(UserError, match=r"not YAML \(line \d+, column \d+") as yaml_error:
        read_yaml(bad_yaml, "DESED data config")
    with pytest.raises(UserError, match=r"not JSON \(line 1, column 25") as json_error:
        read_json(bad_json, "--config")
    assert "\n" not in str(yaml_error.value) and "\n" not in str(json_error.value)


def test_workflow_config_not_utf8(tmp_path, earlier_run, capsys):
    config = tmp_path / "settings.json"
    config.write_bytes('{"weak": {"max_epochs": 2}} # caf\xe9'.encode("latin-1"))
    refuse(capsys, ["--config", str(config)], earlier_run, str(config), "not UTF-8", "byte 33")


def test_desed_yaml_not_utf8_and_tsv_entry_pointing_at_a_wav(corpus, tmp_path, earlier_run, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(f"data:\n  strong_folder: {corpus}/audio/train # caf\xe9\n".encode("latin-1"))
    refuse(capsys, ["--data", str(latin)], earlier_run, str(latin), "not UTF-8")
    wav_tsv = tmp_path / "wav.yaml"
    wav_tsv.write_text(
        f"data:\n  strong_folder: {corpus}/audio/train\n  strong_tsv: {corpus}/audio/train/train_0000.wav\n"
    )
    refuse(capsys, ["--data", str(wav_tsv)], earlier_run, "train_0000.wav", "WAV", "not a text file")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  strong_tsv: [unclosed\n")
    refuse(capsys, ["--data", str(broken)], earlier_run, str(broken), "not YAML (line")


def test_label_tsv_not_utf8(corpus, earlier_run, capsys):
    weak = corpus / "metadata" / "train_weak.tsv"
    weak.write_bytes(weak.read_bytes() + "caf\xe9.wav\tclick\n".encode("latin-1"))
    refuse(capsys, ["--data", str(corpus)], earlier_run, str(weak), "not UTF-8", "byte")


# ------------------------------------------------------------------ label rows: say which were rejected


@pytest.mark.parametrize(
    "case, reason",
    [
        ("extra column", "fields, expected 4"),
        ("negative onset", "needs 0 <= onset < offset"),
        ("onset after offset", "needs 0 <= onset < offset"),
        ("past the end", "starts past the end"),
        ("empty weak labels", None),
    ],
)
def test_every_training_row_rejected_names_the_rows(case, reason, corpus, earlier_run, capsys):
    meta = corpus / "metadata"
    (corpus / "corpus.json").unlink()  # the vocabulary then comes from the (rejected) training labels
    strong, weak = meta / "train_strong.tsv", meta / "train_weak.tsv"
    if case == "empty weak labels":
        strong.unlink()
        rewrite_rows(weak, lambda line: line.split("\t")[0] + "\t")
    else:
        weak.unlink()
        changes = {
            "extra column": lambda line: line + "\textra",
            "negative onset": lambda line: "\t".join([line.split("\t")[0], "-1", "0.5", line.split("\t")[3]]),
            "onset after offset": lambda line: "\t".join([line.split("\t")[0], "2.0", "1.0", line.split("\t")[3]]),
            "past the end": lambda line: "\t".join([line.split("\t")[0], "500", "501", line.split("\t")[3]]),
        }
        rewrite_rows(strong, changes[case])
    line = refuse(capsys, ["--data", str(corpus)], earlier_run, "training labels hold no usable event")
    if reason is not None:
        assert str(strong) in line and "rejected, first:" in line and reason in line


def test_every_training_row_rejected_with_a_declared_vocabulary(corpus, earlier_run, capsys):
    """corpus.json names the classes, so the old check (no class) passed and the run trained on nothing."""
    (corpus / "metadata" / "train_weak.tsv").unlink()
    rewrite_rows(corpus / "metadata" / "train_strong.tsv", lambda line: line + "\textra")
    refuse(capsys, ["--data", str(corpus)], earlier_run, "training labels hold no usable event", "train_strong.tsv")


def test_comma_in_a_strong_label_is_a_rejected_row(tmp_path):
    path = tmp_path / "strong.tsv"
    path.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.1\t0.5\tnoise,band\na.wav\t0.6\t0.9\ttone\n")
    events, issues = read_strong_tsv(path)
    assert [event.label for event in events["a.wav"]] == ["tone"]
    assert len(issues) == 1 and issues[0].line == 2 and "holds a comma" in issues[0].message


@pytest.mark.parametrize("split", ["test", "validation"])
def test_a_split_without_events_is_refused_before_work(split, corpus, earlier_run, capsys):
    meta = corpus / "metadata"
    (meta / f"{split}_weak.tsv").unlink()
    (meta / f"{split}_strong.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    refuse(capsys, ["--data", str(corpus)], earlier_run, f"the {split} split", "holds no labelled event")


def test_psds_with_one_class_is_a_stated_value_error():
    scores = {"a.wav": np.full((1, 50), 0.5, "float32")}
    with pytest.raises(ValueError, match="at least two classes"):
        psds(scores, {"a.wav": [Event(0.1, 0.4, "tone")]}, ("tone",), 50.0, {"a.wav": 1.0})


# ------------------------------------------------------------------ clips: short and non-finite are left out


def test_short_and_overflowing_clips_are_dropped_and_listed(corpus, capsys):
    train = corpus / "audio" / "train"
    sf.write(train / "train_0002.wav", np.zeros(10, "float32"), 24000)
    audio, rate = sf.read(train / "train_0001.wav", dtype="float32")
    sf.write(train / "train_0001.wav", audio * 1e30, rate, subtype="FLOAT")
    data = load_workflow_data(corpus, log=lambda line: None)
    assert "train_0001.wav" not in data.splits["train"].files and "train_0002.wav" not in data.splits["train"].files
    dropped = {Path(issue.file).name: issue.message for issue in data.issues if issue.action == "dropped"}
    assert "shorter than" in dropped["train_0002.wav"] and "not finite" in dropped["train_0001.wav"]
    err = capsys.readouterr().err
    assert "warning:" in err and "train_0002.wav" in err and "train_0001.wav" in err
    assert all(np.isfinite(value).all() for value in data.features["train"].log_mels.values())


# ------------------------------------------------------------------ user encoder modules

GOOD_MODULE = """
import torch
class Model(torch.nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 4
def load_model(*args):
    return Model()
def get_timestamp_embeddings(audio, model):
    frames = audio.shape[1] // 320 + 1
    embeddings = torch.randn(audio.shape[0], frames, 4)
    timestamps = (torch.arange(frames) * 20.0 + 10)[None].repeat(audio.shape[0], 1)
    return embeddings, timestamps
def get_scene_embeddings(audio, model):
    return torch.zeros(audio.shape[0], 4)
"""

BROKEN_MODULES = {
    "raises on import": (
        ("import torch\n", "import torch\nraise RuntimeError('boom')\n"),
        "import failed (RuntimeError: boom)",
    ),
    "syntax error": (("def load_model(*args):", "def load_model(*args:"), "import failed (SyntaxError"),
    "raises in load_model": (
        ("    return Model()", "    raise OSError('no weights here')"),
        "load_model failed (OSError",
    ),
    "exits in load_model": (
        ("    return Model()", "    import sys; sys.exit(3)"),
        "load_model failed (SystemExit: exit status 3",
    ),
    "sample_rate 0": (("sample_rate = 16000", "sample_rate = 0"), "sample_rate must be an integer >= 1"),
    "exits while embedding": (
        ("    return embeddings, timestamps", "    raise SystemExit(3)"),
        "get_timestamp_embeddings failed (SystemExit",
    ),
    "NaN embeddings": (
        ("    return embeddings, timestamps", "    return embeddings * float('nan'), timestamps"),
        "embeddings hold",
    ),
    "timestamps in seconds": (
        ("    return embeddings, timestamps", "    return embeddings, timestamps / 1000"),
        "timestamps are milliseconds",
    ),
    "no batch axis": (
        ("    return embeddings, timestamps", "    return embeddings[0], timestamps"),
        "expected [1, frames, 4]",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MODULES))
def test_misbehaving_encoder_module_is_one_user_error(case, base_corpus, tmp_path):
    (old, new), needle = BROKEN_MODULES[case]
    assert old in GOOD_MODULE
    module = tmp_path / "user_encoder.py"
    module.write_text(GOOD_MODULE.replace(old, new))
    with pytest.raises(UserError) as error:
        handle = load_encoder(str(module))
        encoder_embeddings(handle, base_corpus / "audio" / "train", ["train_0000.wav"])
    assert needle in str(error.value) and str(module) in str(error.value) and "\n" not in str(error.value)


def test_good_encoder_module_still_loads(base_corpus, tmp_path):
    module = tmp_path / "user_encoder.py"
    module.write_text(GOOD_MODULE)
    frames = encoder_embeddings(load_encoder(str(module)), base_corpus / "audio" / "train", ["train_0000.wav"])
    assert frames.frame_rate == pytest.approx(50.0)


def test_encoder_module_exit_status_becomes_a_message(corpus, tmp_path, earlier_run, capsys):
    module = tmp_path / "exits.py"
    module.write_text(GOOD_MODULE.replace("    return Model()", "    import sys; sys.exit(3)"))
    refuse(
        capsys, ["--data", str(corpus), "--encoder", str(module)], earlier_run, str(module), "load_model", "SystemExit"
    )


# ------------------------------------------------------------------ training: a non-finite loss stops it cleanly


def test_nan_learning_rate_stops_training_with_one_message():
    import torch

    from audioenc.timing.fitting import FitSettings, fit_clip_model

    model = torch.nn.Linear(3, 1)
    batches = lambda epoch: [torch.ones(2, 3)]  # noqa: E731
    with pytest.raises(UserError, match="training probe: its weights became non-finite .* epoch 1"):
        fit_clip_model(
            model,
            [{"params": list(model.parameters()), "lr": float("nan")}],
            batches,
            lambda batch: torch.sigmoid(model(batch)).mean(),
            FitSettings(epochs=2),
            name="probe",
        )


def test_one_class_without_an_encoder_is_refused_before_work(corpus, earlier_run, capsys):
    """Without --encoder, step 5 trains its frozen encoder on classes held out from the probe's task:
    a one-class corpus used to fail there, after steps 0-4 had written the run folder."""
    meta = corpus / "metadata"
    (corpus / "corpus.json").unlink()
    for split in ("train", "validation", "test"):
        (meta / f"{split}_weak.tsv").unlink(missing_ok=True)
        rewrite_rows(meta / f"{split}_strong.tsv", lambda line: "\t".join([*line.split("\t")[:3], "beep"]))
    refuse(capsys, ["--data", str(corpus)], earlier_run, "one event class only (beep)", "--encoder")
