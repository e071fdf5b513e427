"""Training/validation datasets and splits of `audioenc.audio.datasets`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audioenc.audio.datasets import (
    FixedSegmentDataset,
    SegmentDataset,
    build_datasets,
    split_manifest,
)
from audioenc.audio.manifest import MANIFEST_NAME, NoUsableAudioError, scan


def _write(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, rate, subtype=subtype)


def _noise(seed: int, channels: int, frames: int) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal((channels, frames))


@pytest.fixture
def mixed_rates(tmp_path) -> Path:
    """Three 2-channel files at 16, 44.1 and 48 kHz, 1.5-2 s long."""
    _write(tmp_path / "a16k.wav", _noise(0, 2, 32_000), 16_000)
    _write(tmp_path / "b44k.flac", _noise(1, 2, 66_150), 44_100)
    _write(tmp_path / "c48k.wav", _noise(2, 2, 96_000), 48_000)
    return tmp_path


def test_items_have_exact_lengths_at_24k(mixed_rates):
    for seconds, expected in ((1.0, 24_000), (0.37, 8_880), (0.5, 12_000)):
        mono = SegmentDataset(mixed_rates, segment_seconds=seconds, channel_mode="mono", channels=1, seed=1)
        every = SegmentDataset(mixed_rates, segment_seconds=seconds, channel_mode="all", channels=2, seed=1)
        down = SegmentDataset(mixed_rates, segment_seconds=seconds, channel_mode="downmix", channels=1, seed=1)
        for index in range(6):
            assert mono[index].shape == (1, expected) and mono[index].dtype == torch.float32
            assert every[index].shape == (2, expected)
            assert down[index].shape == (1, expected)


def test_mono_reaches_every_channel_and_draws_per_item(tmp_path):
    """Channel c of a 32-channel file holds the constant (c + 1) / 64; an item's median tells its channel."""
    levels = (np.arange(32) + 1) / 64
    _write(tmp_path / "em32.wav", np.repeat(levels[:, None], 12_000, axis=1), 24_000, subtype="PCM_24")
    dataset = SegmentDataset(
        tmp_path, segment_seconds=0.05, channel_mode="mono", channels=1, seed=3, items_per_epoch=400
    )
    seen = []
    for index in range(len(dataset)):
        value = float(dataset[index].median())
        channel = int(np.argmin(np.abs(levels - value)))
        assert abs(levels[channel] - value) < 1e-3
        assert channel == dataset.draw(index).channel
        seen.append(channel)
    assert sorted(set(seen)) == list(range(32))
    # Not fixed once per file: consecutive items of the one file change channel.
    assert sum(a != b for a, b in zip(seen, seen[1:])) > 300


def test_all_mode_needs_the_configured_channel_count(mixed_rates, caplog):
    with pytest.raises(NoUsableAudioError, match=r"channels=32 needs 32-channel files.*3 file\(s\) with 2 channel"):
        SegmentDataset(mixed_rates, channel_mode="all", channels=32)
    _write(mixed_rates / "four.wav", _noise(4, 4, 48_000), 48_000)
    with caplog.at_level(logging.WARNING, logger="audioenc.audio.datasets"):
        dataset = SegmentDataset(mixed_rates, channel_mode="all", channels=4)
    assert [entry.path for entry in dataset.entries] == ["four.wav"]
    messages = [record.getMessage() for record in caplog.records]
    warnings = [message for message in messages if "channels channel_mode='all'" in message]
    assert len(warnings) == 1 and "a16k.wav (2 ch)" in warnings[0] and "b44k.flac (2 ch)" in warnings[0]
    assert dataset[0].shape == (4, 24_000)


def test_invalid_channel_settings_are_errors(mixed_rates):
    with pytest.raises(ValueError, match="set channels=1"):
        SegmentDataset(mixed_rates, channel_mode="mono", channels=32)
    with pytest.raises(ValueError, match="choose one of"):
        SegmentDataset(mixed_rates, channel_mode="left")


def test_short_files_are_skipped_with_one_warning_naming_them(mixed_rates, caplog):
    _write(mixed_rates / "short1.wav", _noise(5, 2, 8_000), 16_000)  # 0.5 s
    _write(mixed_rates / "short2.wav", _noise(6, 2, 4_800), 48_000)  # 0.1 s
    with caplog.at_level(logging.WARNING, logger="audioenc.audio.datasets"):
        dataset = SegmentDataset(mixed_rates, segment_seconds=1.0)
    assert sorted(entry.path for entry in dataset.entries) == ["a16k.wav", "b44k.flac", "c48k.wav"]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert "short1.wav (0.50 s)" in warnings[0] and "short2.wav (0.10 s)" in warnings[0]
    # min_seconds below the segment keeps short files; their items are zero-padded to length.
    padded = SegmentDataset(mixed_rates, segment_seconds=1.0, min_seconds=0.05)
    assert len(padded.entries) == 5 and all(padded[i].shape == (1, 24_000) for i in range(10))


def test_draws_are_a_function_of_seed_rank_epoch_and_index(mixed_rates):
    first = SegmentDataset(mixed_rates, seed=5, rank=0)
    again = SegmentDataset(mixed_rates, seed=5, rank=0)
    other_rank = SegmentDataset(mixed_rates, seed=5, rank=1)
    draws = [first.draw(i) for i in range(50)]
    assert draws == [again.draw(i) for i in range(50)]
    assert sum(a != b for a, b in zip(draws, (other_rank.draw(i) for i in range(50)))) == 50
    first.set_epoch(1)
    assert sum(a != b for a, b in zip(draws, (first.draw(i) for i in range(50)))) == 50
    first.set_epoch(0)
    assert torch.equal(first[7], again[7])
    # A global draw counter past len() is a valid index (samplers that count steps).
    assert first.draw(10**6) != first.draw(10**6 + 1) and first[10**6].shape == (1, 24_000)
    # Every file is drawn, roughly in proportion to its duration (2 s, 1.5 s, 2 s).
    counts = {}
    for index in range(600):
        path = first.draw(index).path
        counts[path] = counts.get(path, 0) + 1
    assert set(counts) == {"a16k.wav", "b44k.flac", "c48k.wav"}
    assert counts["b44k.flac"] < counts["a16k.wav"] and counts["b44k.flac"] < counts["c48k.wav"]


def test_workers_give_independent_items_equal_to_single_process(mixed_rates):
    dataset = SegmentDataset(mixed_rates, segment_seconds=0.1, seed=2, items_per_epoch=16)
    single = torch.cat([dataset[i] for i in range(len(dataset))])
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    batches = torch.cat([batch.reshape(-1, batch.shape[-1]) for batch in loader])
    assert torch.equal(batches, single)
    # No two items are the same segment (independent streams, not copies across workers).
    assert len({tuple(row[:32].tolist()) for row in batches}) == len(dataset)


def test_read_failure_is_logged_replaced_and_counted_across_workers(mixed_rates, caplog):
    dataset = SegmentDataset(mixed_rates, segment_seconds=0.1, seed=0, items_per_epoch=24)
    (mixed_rates / "c48k.wav").write_bytes(b"overwritten after the scan")  # fails at read time
    with caplog.at_level(logging.WARNING, logger="audioenc.audio.datasets"):
        items = [dataset[i] for i in range(len(dataset))]
    assert all(item.shape == (1, 2_400) and torch.isfinite(item).all() for item in items)
    assert 1 <= dataset.read_failures <= 3  # dropped after 3 failures in this process
    assert any("c48k.wav" in record.getMessage() for record in caplog.records)
    fresh = SegmentDataset(dataset.manifest, segment_seconds=0.1, seed=0, items_per_epoch=24)
    assert sum(batch.shape[0] for batch in DataLoader(fresh, batch_size=4, num_workers=2)) == 24
    assert fresh.read_failures >= 2  # each worker failed at least once, seen from the main process


def test_fixed_segments_are_identical_across_runs_and_stored_in_the_manifest(mixed_rates):
    first = FixedSegmentDataset(mixed_rates, num_segments=7, segment_seconds=0.25, seed=11)
    items = [first[i] for i in range(len(first))]
    assert [first[i] for i in range(len(first))][3].equal(items[3])  # every epoch
    stored = json.loads((mixed_rates / MANIFEST_NAME).read_text())["fixed_segments"]
    (record,) = stored.values()
    assert [tuple(s.values()) for s in record["segments"]] == [
        (s.path, s.start_frame, s.channel) for s in first.segments
    ]
    second = FixedSegmentDataset(mixed_rates, num_segments=7, segment_seconds=0.25, seed=11)  # a second run
    assert second.segments == first.segments
    assert all(torch.equal(a, b) for a, b in zip(items, (second[i] for i in range(7))))
    (mixed_rates / MANIFEST_NAME).unlink()  # lost cache: the seed alone gives the same segments
    third = FixedSegmentDataset(mixed_rates, num_segments=7, segment_seconds=0.25, seed=11)
    assert third.segments == first.segments
    # Spread over files before repeating one: 7 segments over 3 files -> 3, 2, 2.
    counts = sorted(sum(s.path == path for s in first.segments) for path in {s.path for s in first.segments})
    assert counts == [2, 2, 3]
    assert FixedSegmentDataset(mixed_rates, num_segments=7, segment_seconds=0.25, seed=12).segments != first.segments


def test_split_by_file_is_disjoint_complete_and_stable(tmp_path):
    for index in range(10):
        _write(tmp_path / f"f{index}.wav", _noise(index, 1, 1_600), 16_000)
    manifest = scan(tmp_path)
    splits = split_manifest(manifest, seed=0)
    names = [{entry.path for entry in part.entries} for part in (splits.train, splits.valid, splits.test)]
    assert [len(part) for part in names] == [8, 1, 1]
    assert set.union(*names) == {entry.path for entry in manifest.entries}
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    again = split_manifest(scan(tmp_path), seed=0)
    assert again.valid.entries == splits.valid.entries and again.test.entries == splits.test.entries
    # Adding a file keeps the hash order of the others: with the same split sizes (1 + 1 of
    # 11), held-out files can only be the old held-out ones or the new file.
    _write(tmp_path / "f10.wav", _noise(10, 1, 1_600), 16_000)
    grown = split_manifest(scan(tmp_path), seed=0)
    held_out = {e.path for e in grown.valid.entries} | {e.path for e in grown.test.entries}
    assert len(held_out) == 2 and held_out <= names[1] | names[2] | {"f10.wav"}
    assert (
        split_manifest(manifest, seed=1).valid.entries != splits.valid.entries
        or split_manifest(manifest, seed=1).test.entries != splits.test.entries
    )  # the seed matters


def test_split_by_recording_keeps_chunks_together(tmp_path):
    for take in range(4):
        for part in range(3):
            _write(tmp_path / f"Beach-0{take}-Raw_part{part}.wav", _noise(take * 3 + part, 1, 1_600), 16_000)
    splits = split_manifest(scan(tmp_path), by="recording", valid_fraction=0.25, test_fraction=0.25, seed=4)
    recordings = [{entry.recording for entry in part.entries} for part in (splits.train, splits.valid, splits.test)]
    assert [len(r) for r in recordings] == [2, 1, 1]
    assert [len(part.entries) for part in (splits.train, splits.valid, splits.test)] == [6, 3, 3]
    assert not (recordings[0] & recordings[1] or recordings[0] & recordings[2] or recordings[1] & recordings[2])


def test_split_by_scene_class_holds_out_named_classes(tmp_path):
    for scene in ("Beach", "Park", "Woodland", "BusyStreet"):
        for take in range(2):
            _write(tmp_path / f"{scene}-0{take}.wav", _noise(take, 1, 1_600), 16_000)
    manifest = scan(tmp_path)
    splits = split_manifest(manifest, by="scene_class", valid_groups=("Park",), test_groups=("Woodland",))
    assert {e.scene_class for e in splits.valid.entries} == {"Park"}
    assert {e.scene_class for e in splits.test.entries} == {"Woodland"}
    assert {e.scene_class for e in splits.train.entries} == {"Beach", "BusyStreet"}
    with pytest.raises(ValueError, match="not found"):
        split_manifest(manifest, by="scene_class", valid_groups=("Mars",))
    with pytest.raises(ValueError, match="cannot give 1 valid"):
        split_manifest(manifest.subset(manifest.entries[:2]), by="scene_class")


def test_build_datasets_gives_three_disjoint_datasets(mixed_rates):
    for index in range(7):
        _write(mixed_rates / f"extra{index}.wav", _noise(10 + index, 2, 24_000), 24_000)
    data = build_datasets(
        mixed_rates, segment_seconds=0.5, channel_mode="all", channels=2, seed=0, valid_segments=4, test_segments=3
    )
    assert data.train[0].shape == (2, 12_000)
    assert len(data.valid) == 4 and len(data.test) == 3
    valid_files = {segment.path for segment in data.valid.segments}
    train_files = {entry.path for entry in data.train.entries}
    assert valid_files and not valid_files & train_files


def test_files_rejected_at_scan_time_are_left_out_with_one_warning(mixed_rates, caplog):
    (mixed_rates / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    (mixed_rates / "empty.flac").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="audioenc.audio.datasets"):
        dataset = SegmentDataset(mixed_rates)
    assert sorted(entry.path for entry in dataset.entries) == ["a16k.wav", "b44k.flac", "c48k.wav"]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "2 file(s)" in warning and "broken.wav (" in warning and "empty.flac (zero-length file" in warning
