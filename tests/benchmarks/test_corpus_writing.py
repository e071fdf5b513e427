"""benchmarks/real_events/corpus_writing.py: the background's formula and spectrum, and the workflow layout
written from hand-made clips (TSV text, 16-bit audio, corpus.json, desed.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from scipy.signal import welch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "real_events"))

import corpus_writing  # noqa: E402  (a script folder, not a package)

from audioenc.audio.formats import read_corpus_split  # noqa: E402


def test_pink_noise_is_unit_rms_with_a_1_over_f_spectrum():
    noise = corpus_writing.pink_noise(np.random.default_rng(0), 16_000 * 8)
    assert abs(np.sqrt(np.mean(noise**2)) - 1) < 1e-12
    frequencies, power = welch(noise, fs=16_000, nperseg=4096)
    band = (frequencies >= 20) & (frequencies <= 4000)
    slope = np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0]
    assert -1.15 < slope < -0.85  # power ∝ f^-1


def test_background_is_level_times_sway_times_pink_noise():
    rate, samples, level = 16_000, 16_000 * 3, 0.01
    got = corpus_writing.background(np.random.default_rng(7), level, samples, rate)
    rng = np.random.default_rng(7)  # the same draws, in the documented order
    frequency = rng.uniform(0.05, 0.3)
    phase = rng.uniform(0, 2 * np.pi)
    sway = 1 + 0.3 * np.sin(2 * np.pi * frequency * np.arange(samples) / rate + phase)
    np.testing.assert_allclose(got, level * sway * corpus_writing.pink_noise(rng, samples), rtol=1e-12, atol=0)
    assert got.shape == (samples,)


def test_write_split_and_corpus_files_write_the_workflow_layout(tmp_path):
    rate = 16_000
    clip = np.linspace(-0.5, 0.5, rate, dtype=np.float32)
    clips = [
        (clip, [(0.25, 0.5, "b", "x/1.ogg"), (0.6, 0.9, "a", "x/2.ogg")]),
        (np.zeros(rate, np.float32), []),
    ]
    counts = corpus_writing.write_split(tmp_path, "train", iter(clips), rate, ("a", "b", "c"))
    assert counts == {"a": 1, "b": 1, "c": 0}
    assert (tmp_path / "metadata" / "train_strong.tsv").read_text() == (
        "filename\tonset\toffset\tevent_label\ntrain_0000.wav\t0.250\t0.500\tb\ntrain_0000.wav\t0.600\t0.900\ta\n"
    )
    assert (tmp_path / "metadata" / "train_weak.tsv").read_text() == (
        "filename\tevent_labels\ntrain_0000.wav\ta,b\ntrain_0001.wav\t\n"
    )
    audio, got_rate = sf.read(tmp_path / "audio" / "train" / "train_0000.wav", dtype="float32")
    assert got_rate == rate and sf.info(str(tmp_path / "audio" / "train" / "train_0000.wav")).subtype == "PCM_16"
    np.testing.assert_allclose(audio, clip, atol=1 / 32768)

    split = read_corpus_split(tmp_path, "train", classes=("a", "b", "c"))
    assert split.files == ["train_0000.wav", "train_0001.wav"]
    assert not split.issues

    corpus_writing.write_corpus_files(tmp_path, {"classes": ["a", "b", "c"], "seed": 3})
    assert json.loads((tmp_path / "corpus.json").read_text()) == {"classes": ["a", "b", "c"], "seed": 3}
    config = yaml.safe_load((tmp_path / "desed.yaml").read_text())["data"]
    assert config["weak_folder"] == str(tmp_path / "audio" / "train")
    assert config["weak_tsv"] == str(tmp_path / "metadata" / "train_weak.tsv")
    assert config["synth_val_tsv"] == str(tmp_path / "metadata" / "validation_strong.tsv")
    assert config["test_folder"] == str(tmp_path / "audio" / "test")
