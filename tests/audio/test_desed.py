"""DESED data configs (audioenc.audio.desed) and the workflow reading one (load_workflow_data).

References: a small DESED_task-style recipe written here by hand — its ``data:`` section, the
audio folders (16 kHz mono and 44.1 kHz stereo WAVs written with soundfile) and TSVs — so the
expected splits, durations and dropped items are known by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio.desed import is_desed_config, merge_splits, read_desed_config
from audioenc.audio.formats import Event, read_event_split
from audioenc.timing.workflow.data import load_workflow_data

DATA = "../../data/dcase/dataset"  # relative to the config's folder (recipes/task4/confs -> tmp/data/...)


def _wav(path: Path, rate: int, channels: int = 1, seconds: float = 1.0, frequency: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * frequency * t)
    sf.write(path, np.stack([tone] * channels, axis=1) if channels > 1 else tone, rate, subtype="PCM_16")
    return path


def _truncate(path: Path, keep_data_bytes: int) -> None:
    """Cut the file ``keep_data_bytes`` after its 44-byte header (the header still declares it all)."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + keep_data_bytes])


def _tsv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


STRONG = "filename\tonset\toffset\tevent_label"
WEAK = "filename\tevent_labels"


def _recipe(root: Path) -> Path:
    """A DESED_task recipe: confs/default.yaml naming four subsets; returns the config's path."""
    data = root / "data" / "dcase" / "dataset"
    audio, meta = data / "audio", data / "metadata"
    for index in (1, 2, 3):
        _wav(audio / "train" / "synthetic" / f"s{index}.wav", 16000, frequency=300.0 * index)
    _tsv(
        meta / "train" / "synthetic.tsv",
        STRONG,
        [
            "s1.wav\t0.100\t0.500\tdog",
            "s2.wav\t0.200\t0.600\tcat",
            "s3.wav\t0.300\t0.900\tdog",
            "ghost.wav\t0.100\t0.300\tdog",  # line 5: no such audio file
            "s3.wav\tabc\t0.500\tcat",  # line 6: malformed onset
        ],
    )
    _wav(audio / "train" / "weak" / "w1.wav", 44100, channels=2)
    _wav(audio / "train" / "weak" / "w2.wav", 44100, channels=2, frequency=880.0)
    _tsv(meta / "train" / "weak.tsv", WEAK, ["w1.wav\tdog,cat", "w2.wav\t"])
    _wav(audio / "train" / "unlabel_in_domain" / "u1.wav", 16000, frequency=500.0)
    _wav(audio / "train" / "unlabel_in_domain" / "u2.wav", 44100, channels=2, seconds=0.5)
    (audio / "train" / "unlabel_in_domain" / "readme.txt").write_text("clips without labels\n")
    _wav(audio / "validation" / "v1.wav", 16000)
    _wav(audio / "validation" / "v2.wav", 16000, seconds=0.8)
    _tsv(meta / "validation" / "validation.tsv", STRONG, ["v1.wav\t0.000\t0.400\tcat", "v2.wav\t0.100\t0.700\tdog"])
    for index in (1, 2, 3):
        _wav(audio / "eval" / f"t{index}.wav", 44100, channels=2)
    _truncate(audio / "eval" / "t3.wav", 44100)  # a quarter of its data left
    _tsv(
        meta / "eval" / "public.tsv",
        STRONG,
        ["t1.wav\t0.100\t0.400\tdog", "t2.wav\t0.500\t0.900\tcat", "t3.wav\t0.100\t0.200\tdog"],
    )
    config = root / "recipes" / "task4" / "confs" / "default.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"""\
training:
  batch_size: [6, 6, 12]
  n_epochs: 200
data:
  synth_folder: "{DATA}/audio/train/synthetic/"
  synth_folder_44k: "{DATA}/audio/train/synthetic_44k/"
  synth_tsv: "{DATA}/metadata/train/synthetic.tsv"
  weak_folder: "{DATA}/audio/train/weak/"
  weak_tsv: "{DATA}/metadata/train/weak.tsv"
  unlabeled_folder: "{DATA}/audio/train/unlabel_in_domain/"
  synth_val_folder: "{DATA}/audio/validation/"
  synth_val_tsv: "{DATA}/metadata/validation/validation.tsv"
  synth_val_dur: "{DATA}/metadata/validation/durations.tsv"
  test_folder: "{DATA}/audio/eval/"
  test_tsv: "{DATA}/metadata/eval/public.tsv"
  fs: 16000
""")
    return config


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> Path:
    config = _recipe(tmp_path)
    elsewhere = tmp_path / "somewhere" / "else" / "entirely"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # "../../data" from here does not exist: the config's folder must be used
    return config


def test_read_desed_config_gives_the_three_splits(recipe):
    result = read_desed_config(recipe)
    assert sorted(result.splits) == ["test", "train", "validation"]
    train = result.splits["train"]
    assert train.name == "train"
    assert train.files == ["synthetic/s1.wav", "synthetic/s2.wav", "synthetic/s3.wav", "weak/w1.wav", "weak/w2.wav"]
    data = recipe.parent.parent.parent.parent / "data" / "dcase" / "dataset"
    assert train.audio_dir == (data / "audio" / "train").resolve()  # the folders' common parent
    assert train.classes == ("cat", "dog")
    assert train.weak["synthetic/s1.wav"] == ("dog",) and train.weak["weak/w1.wav"] == ("cat", "dog")
    assert train.weak["weak/w2.wav"] == () and train.weak["synthetic/s3.wav"] == ("dog",)
    assert train.strong is None  # the weak subset has no event times, so the merged split has none
    assert train.durations["synthetic/s1.wav"] == pytest.approx(1.0)
    validation, test = result.splits["validation"], result.splits["test"]
    assert validation.files == ["v1.wav", "v2.wav"] and validation.classes == ("cat", "dog")
    assert validation.strong == {"v1.wav": [Event(0.0, 0.4, "cat")], "v2.wav": [Event(0.1, 0.7, "dog")]}
    assert validation.durations["v2.wav"] == pytest.approx(0.8)
    # The truncated clip's header is readable: it is listed here; reading its samples fails later.
    assert test.files == ["t1.wav", "t2.wav", "t3.wav"] and test.durations["t3.wav"] == pytest.approx(0.25)
    # Dropped label rows, each with its TSV and line.
    synth_tsv = str((data / "metadata" / "train" / "synthetic.tsv").resolve())
    dropped = {(issue.file, issue.line): issue.message for issue in train.issues}
    assert "ghost.wav" in dropped[(synth_tsv, 5)] and "not in the audio folder" in dropped[(synth_tsv, 5)]
    assert "'abc'" in dropped[(synth_tsv, 6)] and "s3.wav" in dropped[(synth_tsv, 6)]
    assert result.issues == []  # every configured subset was found
    # The unlabeled folder: its audio files, no labels, the training vocabulary.
    unlabeled = result.unlabeled
    assert unlabeled.name == "unlabeled" and unlabeled.files == ["u1.wav", "u2.wav"]
    assert unlabeled.audio_dir == (data / "audio" / "train" / "unlabel_in_domain").resolve()
    assert unlabeled.weak == {"u1.wav": (), "u2.wav": ()} and unlabeled.strong is None
    assert unlabeled.classes == ("cat", "dog") and unlabeled.durations["u2.wav"] == pytest.approx(0.5)
    assert any(note.startswith("unlabeled: 2 clips without labels (") for note in result.notes)
    assert any(note.startswith("train: synth (") and "strong labels" in note for note in result.notes)
    assert any(note.startswith("train: weak (") and "weak labels" in note for note in result.notes)


def test_load_workflow_data_reads_a_desed_config(recipe):
    data = load_workflow_data(recipe, log=lambda line: None)
    assert data.classes == ("cat", "dog")
    assert data.splits["train"].files == [
        "synthetic/s1.wav",
        "synthetic/s2.wav",
        "synthetic/s3.wav",
        "weak/w1.wav",
        "weak/w2.wav",
    ]
    assert data.splits["validation"].files == ["v1.wav", "v2.wav"]
    assert data.splits["test"].files == ["t1.wav", "t2.wav"]  # the truncated t3.wav left out
    for name in ("train", "validation", "test"):
        assert sorted(data.features[name].log_mels) == data.splits[name].files
    # 16 kHz mono and 44.1 kHz stereo clips, all featurised at the log-mel rate.
    assert data.audio_formats == {"16000 Hz, 1 ch": 6, "44100 Hz, 2 ch": 5}  # with the two unlabeled clips
    assert data.unlabeled.split.files == ["u1.wav", "u2.wav"] and sorted(data.unlabeled.log_mels) == [
        "u1.wav",
        "u2.wav",
    ]
    assert data.unlabeled.log_mels["u1.wav"].shape == (64, 100)  # 1 s at 100 frames/s
    assert data.unlabeled.config == data.features["train"].config
    # Every dropped item is listed with its file.
    truncated = [issue for issue in data.issues if issue.file.endswith("t3.wav")]
    assert len(truncated) == 1 and "truncated" in truncated[0].message and truncated[0].action == "dropped"
    assert any(
        issue.file.endswith("synthetic.tsv") and issue.line == 5 and "ghost.wav" in issue.message
        for issue in data.issues
    )
    assert any(
        issue.file.endswith("synthetic.tsv") and issue.line == 6 and "s3.wav" in issue.message for issue in data.issues
    )
    assert any(note.startswith(f"DESED data config {recipe}: train: synth") for note in data.notes)


def test_a_clip_cut_right_after_its_header_is_reported(tmp_path, monkeypatch):
    # A WAV holding its header only has no samples: it is not a clip, and its label rows are dropped.
    config = _recipe(tmp_path)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data" / "dcase" / "dataset"
    _truncate(data_dir / "audio" / "eval" / "t2.wav", 0)
    (data_dir / "audio" / "eval" / "t4.wav").write_bytes((data_dir / "audio" / "eval" / "t1.wav").read_bytes())
    data = load_workflow_data(config, log=lambda line: None)
    assert data.splits["test"].files == ["t1.wav", "t4.wav"]
    assert any(issue.file.endswith("public.tsv") and "t2.wav" in issue.message for issue in data.issues)
    assert any(issue.file.endswith("t3.wav") for issue in data.issues)


def test_a_config_without_a_training_subset_is_a_clear_error(tmp_path):
    _recipe(tmp_path)
    config = tmp_path / "recipes" / "task4" / "confs" / "val_only.yaml"
    config.write_text(
        f"data:\n  synth_val_folder: {DATA}/audio/validation/\n"
        f"  synth_val_tsv: {DATA}/metadata/validation/validation.tsv\n"
    )
    with pytest.raises(ValueError, match="no training subset") as error:
        read_desed_config(config)
    assert "synth_folder/synth_tsv" in str(error.value) and "weak_folder/weak_tsv" in str(error.value)
    with pytest.raises(ValueError, match="no training subset"):
        load_workflow_data(config, log=lambda line: None)
    missing = tmp_path / "recipes" / "task4" / "confs" / "missing.yaml"
    missing.write_text("data:\n  synth_folder: nowhere/\n  synth_tsv: nowhere.tsv\n")
    with pytest.raises(ValueError, match="no training subset"):
        read_desed_config(missing)
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("data: [unclosed\n")
    with pytest.raises(ValueError, match="not YAML"):
        read_desed_config(not_yaml)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="no `data:` section"):
        read_desed_config(listed)


def test_missing_and_half_configured_subsets_are_issues(tmp_path, monkeypatch):
    _recipe(tmp_path)
    monkeypatch.chdir(tmp_path / "recipes")
    config = tmp_path / "recipes" / "task4" / "confs" / "partial.yaml"
    # Only the data section (no `data:` key), one subset missing on disk, one without its TSV.
    config.write_text(
        f"weak_folder: {DATA}/audio/train/weak/\nweak_tsv: {DATA}/metadata/train/weak.tsv\n"
        f"strong_folder: {DATA}/audio/train/strong/\nstrong_tsv: {DATA}/metadata/train/strong.tsv\n"
        f"test_folder: {DATA}/audio/eval/\n"
    )
    result = read_desed_config(config)
    assert sorted(result.splits) == ["train"] and result.splits["train"].files == ["w1.wav", "w2.wav"]
    messages = [issue.message for issue in result.issues]
    assert len(messages) == 2 and all(issue.file == str(config) for issue in result.issues)
    assert any(m.startswith("strong:") and "does not exist; subset left out" in m for m in messages)
    assert any(m.startswith("test: needs both test_folder and test_tsv") for m in messages)


def test_the_44k_folder_stands_in_and_the_recipe_root_resolves(tmp_path, monkeypatch):
    _recipe(tmp_path)
    monkeypatch.chdir(tmp_path / "recipes")
    data = tmp_path / "data" / "dcase" / "dataset"
    (data / "audio" / "train" / "synthetic").rename(data / "audio" / "train" / "synthetic_44k")
    config = tmp_path / "recipes" / "task4" / "confs" / "k44.yaml"
    # Paths relative to the recipe's root (the config folder's parent): "../data" from tmp/recipes/task4.
    config.write_text(
        "data:\n  synth_folder: ../../data/dcase/dataset/audio/train/synthetic/\n"
        "  synth_folder_44k: ../../data/dcase/dataset/audio/train/synthetic_44k/\n"
        "  synth_tsv: ../../data/dcase/dataset/metadata/train/synthetic.tsv\n"
    )
    result = read_desed_config(config)
    train = result.splits["train"]
    assert train.files == ["s1.wav", "s2.wav", "s3.wav"]
    assert train.audio_dir == (data / "audio" / "train" / "synthetic_44k").resolve()
    assert train.strong["s1.wav"] == [Event(0.1, 0.5, "dog")]


def test_merge_splits_keys_files_under_the_common_parent(tmp_path):
    for name in ("a1.wav", "a2.wav"):
        _wav(tmp_path / "corpus" / "a" / name, 16000)
    _wav(tmp_path / "corpus" / "b" / "b1.wav", 16000)
    strong_a = _tsv(tmp_path / "a.tsv", STRONG, ["a1.wav\t0.1\t0.2\tdog"])
    strong_b = _tsv(tmp_path / "b.tsv", STRONG, ["b1.wav\t0.3\t0.4\tcat"])
    weak_b = _tsv(tmp_path / "bw.tsv", WEAK, ["b1.wav\tbird"])
    part_a = read_event_split(tmp_path / "corpus" / "a", strong_tsv=strong_a)
    both_strong = merge_splits("train", [part_a, read_event_split(tmp_path / "corpus" / "b", strong_tsv=strong_b)])
    assert both_strong.files == ["a/a1.wav", "a/a2.wav", "b/b1.wav"]
    assert both_strong.strong == {
        "a/a1.wav": [Event(0.1, 0.2, "dog")],
        "a/a2.wav": [],
        "b/b1.wav": [Event(0.3, 0.4, "cat")],
    }
    assert both_strong.classes == ("cat", "dog") and both_strong.audio_dir == (tmp_path / "corpus").resolve()
    one_weak = merge_splits("train", [part_a, read_event_split(tmp_path / "corpus" / "b", weak_tsv=weak_b)])
    assert one_weak.strong is None and one_weak.classes == ("bird", "dog")
    assert one_weak.weak == {"a/a1.wav": ("dog",), "a/a2.wav": (), "b/b1.wav": ("bird",)}


def test_is_desed_config(tmp_path):
    for name in ("a.yaml", "b.YML"):
        (tmp_path / name).write_text("data: {}\n")
        assert is_desed_config(tmp_path / name)
    (tmp_path / "c.json").write_text("{}")
    (tmp_path / "folder.yaml").mkdir()
    assert not is_desed_config(tmp_path / "c.json")
    assert not is_desed_config(tmp_path / "folder.yaml")
    assert not is_desed_config(tmp_path / "absent.yaml")


def test_unreadable_unlabeled_clips_are_issues_and_a_missing_folder_is_none(recipe):
    folder = recipe.parent.parent.parent.parent / "data" / "dcase" / "dataset" / "audio" / "train" / "unlabel_in_domain"
    (folder / "u3.wav").write_bytes(b"RIFF....not audio")  # no header libsndfile reads
    _wav(folder / "u4.wav", 16000)
    _truncate(folder / "u4.wav", 100)  # a readable header, most samples gone
    result = read_desed_config(recipe)
    assert result.unlabeled.files == ["u1.wav", "u2.wav", "u4.wav"]
    assert [Path(issue.file).name for issue in result.unlabeled.issues] == ["u3.wav"]
    data = load_workflow_data(recipe, log=lambda line: None)
    assert sorted(data.unlabeled.log_mels) == ["u1.wav", "u2.wav"]
    dropped = {Path(issue.file).name: issue for issue in data.issues if "unlabel_in_domain" in issue.file}
    assert sorted(dropped) == ["u3.wav", "u4.wav"] and all(issue.action == "dropped" for issue in dropped.values())
    assert "truncated" in dropped["u4.wav"].message
    # A configured folder that does not exist: an issue, no unlabeled clips, the rest read as before.
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    result = read_desed_config(recipe)
    assert result.unlabeled is None and sorted(result.splits) == ["test", "train", "validation"]
    (issue,) = result.issues
    assert issue.file == str(recipe) and issue.message.startswith("unlabeled:") and "does not exist" in issue.message
    assert load_workflow_data(recipe, log=lambda line: None).unlabeled is None


def test_an_unlabeled_folder_without_a_readable_clip_is_an_issue(recipe):
    folder = recipe.parent.parent.parent.parent / "data" / "dcase" / "dataset" / "audio" / "train" / "unlabel_in_domain"
    for name in ("u1.wav", "u2.wav"):
        (folder / name).write_bytes(b"not audio")
    result = read_desed_config(recipe)
    assert result.unlabeled is None
    messages = [issue.message for issue in result.issues]
    assert len(messages) == 3 and "no readable audio file" in messages[-1]
    assert sum("cannot be used" in message for message in messages) == 2


def test_the_unlabeled_44k_folder_stands_in(tmp_path, monkeypatch):
    _recipe(tmp_path)
    monkeypatch.chdir(tmp_path / "recipes")
    train = tmp_path / "data" / "dcase" / "dataset" / "audio" / "train"
    (train / "unlabel_in_domain").rename(train / "unlabel_in_domain_44k")
    config = tmp_path / "recipes" / "task4" / "confs" / "k44.yaml"
    config.write_text(
        f"data:\n  weak_folder: {DATA}/audio/train/weak/\n  weak_tsv: {DATA}/metadata/train/weak.tsv\n"
        f"  unlabeled_folder: {DATA}/audio/train/unlabel_in_domain_16k/\n"
        f"  unlabeled_folder_44k: {DATA}/audio/train/unlabel_in_domain_44k/\n"
    )
    result = read_desed_config(config)
    assert result.unlabeled.files == ["u1.wav", "u2.wav"] and result.issues == []
    assert result.unlabeled.audio_dir == (train / "unlabel_in_domain_44k").resolve()
