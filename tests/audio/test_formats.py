"""DESED-style TSV reading: every kind of bad input yields an issue naming file and line,
good rows survive, and writing then reading gives back the same labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioenc.audio.formats import (
    Event,
    read_durations_tsv,
    read_event_split,
    read_strong_tsv,
    read_weak_tsv,
    write_durations_tsv,
    write_strong_tsv,
    write_weak_tsv,
)

CLASSES = ("click", "tone", "speech")


@pytest.fixture()
def audio_dir(tmp_path: Path) -> Path:
    """Two clips: a.wav is 2.0 s, b.wav is 1.0 s (8 kHz is enough for header checks)."""
    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(16000, dtype=np.float32), 8000)
    sf.write(folder / "b.wav", np.zeros(8000, dtype=np.float32), 8000)
    (folder / "README.txt").write_text("not audio")
    return folder


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _only(issues, line):
    found = [issue for issue in issues if issue.line == line]
    assert len(found) == 1, f"expected one issue on line {line}, got {issues}"
    return found[0]


def test_strong_bad_rows_each_named_with_file_and_line(tmp_path, audio_dir):
    path = _write(
        tmp_path / "strong.tsv",
        [
            "filename\tonset\toffset\tevent_label",  # 1
            "a.wav\t0.100\t0.500\tclick",  # 2 good
            "a.wav\tzero\t0.500\tclick",  # 3 onset not a number
            "a.wav\t0.9\t0.7\ttone",  # 4 offset <= onset
            "a.wav\t-0.1\t0.3\ttone",  # 5 negative onset
            "a.wav\t0.2\t0.4",  # 6 missing label (short row)
            "a.wav\t0.2\t0.4\ttone\textra",  # 7 too many fields
            "missing.wav\t0.1\t0.2\ttone",  # 8 file not in the audio folder
            "b.wav\t1.5\t1.8\ttone",  # 9 starts past the end (b is 1.0 s)
            "b.wav\t0.5\t1.4\tspeech",  # 10 ends past the end -> clipped
            "a.wav\t0.4\t0.8\tclick",  # 11 overlaps line 2 -> merged
            "a.wav\t1.0\t1.2\tdog",  # 12 unknown class
            "\t0.1\t0.2\ttone",  # 13 empty filename
            "a.wav\t1.5\t1.9\tspeech",  # 14 good
        ],
    )
    events, issues = read_strong_tsv(path, audio_dir=audio_dir, classes=CLASSES)
    assert events["a.wav"] == [Event(0.1, 0.8, "click"), Event(1.5, 1.9, "speech")]
    assert events["b.wav"] == [Event(0.5, 1.0, "speech")]
    expected = {
        3: ("dropped", "not numbers"),
        4: ("dropped", "onset < offset"),
        5: ("dropped", "onset < offset"),
        6: ("dropped", "empty event_label"),
        7: ("dropped", "fields"),
        8: ("dropped", "not in the audio folder"),
        9: ("dropped", "past the end"),
        10: ("clipped", "past the end"),
        11: ("merged", "overlaps line 2"),
        12: ("dropped", "unknown class"),
        13: ("dropped", "empty filename"),
    }
    assert sorted(issue.line for issue in issues) == sorted(expected)
    for line, (action, words) in expected.items():
        issue = _only(issues, line)
        assert issue.file == str(path)
        assert issue.action == action
        assert words in issue.message
        assert f"{path}:{line}" in str(issue)
    assert "missing.wav" in _only(issues, 8).message
    assert "'dog'" in _only(issues, 12).message


def test_strong_without_audio_folder_skips_file_checks_and_keeps_negatives(tmp_path):
    path = _write(
        tmp_path / "strong.tsv",
        ["filename\tonset\toffset\tevent_label", "x.wav\t0.0\t1.0\ttone", "y.wav\t\t\t", "x.wav\t1.0\t2.0\ttone"],
    )
    events, issues = read_strong_tsv(path)
    # Touching same-class events are "connected" for sed_scores_eval: merged and reported.
    assert events == {"x.wav": [Event(0.0, 2.0, "tone")], "y.wav": []}
    assert [(issue.line, issue.action) for issue in issues] == [(4, "merged")]


def test_missing_header_is_reported_and_rows_still_read(tmp_path):
    path = _write(tmp_path / "strong.tsv", ["x.wav\t0.5\t1.0\ttone"])
    events, issues = read_strong_tsv(path)
    assert events == {"x.wav": [Event(0.5, 1.0, "tone")]}
    assert issues[0].line == 1 and issues[0].action == "note" and "no header" in issues[0].message


def test_header_lacking_a_column_makes_the_file_unusable_with_a_message(tmp_path):
    path = _write(tmp_path / "strong.tsv", ["filename\tonset\tevent_label", "x.wav\t0.5\ttone"])
    events, issues = read_strong_tsv(path)
    assert events == {}
    assert issues[0].action == "error" and issues[0].line == 1 and "offset" in issues[0].message


def test_columns_in_another_order_are_read_by_name(tmp_path):
    path = _write(tmp_path / "strong.tsv", ["event_label\tfilename\toffset\tonset", "tone\tx.wav\t1.0\t0.5"])
    events, issues = read_strong_tsv(path)
    assert events == {"x.wav": [Event(0.5, 1.0, "tone")]} and issues == []


def test_weak_bad_rows_each_named_with_file_and_line(tmp_path, audio_dir):
    path = _write(
        tmp_path / "weak.tsv",
        [
            "filename\tevent_labels",  # 1
            "a.wav\tclick,tone",  # 2 good
            "b.wav\t",  # 3 good negative
            "missing.wav\ttone",  # 4 not in audio folder
            "a.wav\tspeech",  # 5 duplicate row -> merged
            "b.wav\tdog,tone",  # 6 unknown class dropped, tone kept; duplicate of 3 -> merged
        ],
    )
    labels, issues = read_weak_tsv(path, audio_dir=audio_dir, classes=CLASSES)
    assert labels == {"a.wav": ("click", "speech", "tone"), "b.wav": ("tone",)}
    found = sorted((issue.line, issue.action) for issue in issues)
    assert found == [(4, "dropped"), (5, "merged"), (6, "dropped"), (6, "merged")]
    for issue in issues:
        assert issue.file == str(path) and f"{path}:{issue.line}" in str(issue)
    assert any("'dog'" in issue.message for issue in issues)


def test_durations_tsv_bad_rows(tmp_path):
    path = _write(tmp_path / "d.tsv", ["filename\tduration", "a.wav\t2.0", "b.wav\tlong", "c.wav\t-1"])
    durations, issues = read_durations_tsv(path)
    assert durations == {"a.wav": 2.0}
    assert [issue.line for issue in issues] == [3, 4]


def test_write_then_read_round_trip(tmp_path):
    events = {"a.wav": [(0.25, 0.75, "tone"), (0.1, 0.2, "click")], "b.wav": []}
    write_strong_tsv(tmp_path / "s.tsv", events)
    write_weak_tsv(tmp_path / "w.tsv", {"a.wav": ["tone", "click"], "b.wav": []})
    write_durations_tsv(tmp_path / "d.tsv", {"a.wav": 2.0, "b.wav": 1.0})
    strong, strong_issues = read_strong_tsv(tmp_path / "s.tsv")
    weak, weak_issues = read_weak_tsv(tmp_path / "w.tsv")
    durations, duration_issues = read_durations_tsv(tmp_path / "d.tsv")
    assert strong == {"a.wav": [Event(0.1, 0.2, "click"), Event(0.25, 0.75, "tone")]}
    assert weak == {"a.wav": ("click", "tone"), "b.wav": ()}
    assert durations == {"a.wav": 2.0, "b.wav": 1.0}
    assert strong_issues == weak_issues == duration_issues == []


def test_split_combines_strong_and_weak_and_lists_unlabelled_files(tmp_path, audio_dir):
    sf.write(audio_dir / "c.wav", np.zeros(8000, dtype=np.float32), 8000)
    strong = _write(tmp_path / "s.tsv", ["filename\tonset\toffset\tevent_label", "a.wav\t0.1\t0.5\tclick"])
    weak = _write(tmp_path / "w.tsv", ["filename\tevent_labels", "a.wav\ttone", "b.wav\t"])
    split = read_event_split(audio_dir, name="valid", strong_tsv=strong, weak_tsv=weak, classes=CLASSES)
    # c.wav has no weak row but strong labels exist for the split: a negative.
    assert split.files == ["a.wav", "b.wav", "c.wav"]
    assert split.weak == {"a.wav": ("click", "tone"), "b.wav": (), "c.wav": ()}
    assert split.strong["c.wav"] == [] and split.strong["a.wav"] == [Event(0.1, 0.5, "click")]
    assert split.durations["a.wav"] == pytest.approx(2.0)
    assert any("lack ['click']" in issue.message for issue in split.issues)
    assert split.positive_files() == ["a.wav"]

    weak_only = read_event_split(audio_dir, name="train", weak_tsv=weak, classes=CLASSES)
    assert weak_only.strong is None and weak_only.files == ["a.wav", "b.wav"]
    assert any("c.wav" in issue.message and "without any label" in issue.message for issue in weak_only.issues)


def test_split_without_label_files_or_audio_fails_with_what_to_do(tmp_path, audio_dir):
    with pytest.raises(ValueError, match="strong and/or a weak"):
        read_event_split(audio_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    weak = _write(tmp_path / "w.tsv", ["filename\tevent_labels"])
    with pytest.raises(FileNotFoundError, match="no readable audio"):
        read_event_split(empty, weak_tsv=weak)
