"""benchmarks/real_events/build_speech_corpus.py without the Debian package: the letter of a file (from
``sounds.xml``), the speaker-disjoint splits, the audible extent, the prepared word, the clip's labels and
SNRs, and a whole build from a fake klettres folder of tone "words" (layout read back, byte-reproducible)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "real_events"))

import build_speech_corpus as speech  # noqa: E402  (a script folder, not a package)

from audioenc.audio.formats import read_corpus_split  # noqa: E402

RATE = speech.RATE


def sounds_xml(entries: list[tuple[str, str]], syllables: list[tuple[str, str]] = ()) -> str:
    alphabet = "".join(f'<sound name="{name}" file="{file}" />' for name, file in entries)
    syllab = "".join(f'<sound name="{name}" file="{file}" />' for name, file in syllables)
    return (
        f'<klettres><language code="xx"><menuitem><label>X</label></menuitem><alphabet>{alphabet}</alphabet>'
        f"<syllables>{syllab}</syllables></language></klettres>"
    )


def test_the_letter_comes_from_sounds_xml_not_the_file_name():
    # Dutch numbers its files in alphabet order and has no C: a-2.ogg is D.
    dutch = sounds_xml([("A", "nl/alpha/a-0.ogg"), ("B", "nl/alpha/a-1.ogg"), ("D", "nl/alpha/a-2.ogg")])
    assert speech.alphabet(dutch) == {"a": "nl/alpha/a-0.ogg", "b": "nl/alpha/a-1.ogg", "d": "nl/alpha/a-2.ogg"}
    # Hungarian: A and Á are different files; a multi-letter name (CS) and a non-class letter (C) are no class;
    # a syllable named like a letter is not one; the first entry of a repeated letter wins.
    hungarian = sounds_xml(
        [("A", "hu/alpha/a1.ogg"), ("Á", "hu/alpha/a2.ogg"), ("C", "hu/alpha/c.ogg"), ("CS", "hu/alpha/cs.ogg"),
         ("E", "hu/alpha/e1.ogg"), ("E", "hu/alpha/e9.ogg")],
        syllables=[("b", "hu/syllab/b.ogg")],
    )  # fmt: skip
    assert speech.alphabet(hungarian) == {"a": "hu/alpha/a1.ogg", "e": "hu/alpha/e1.ogg"}


def test_splits_are_speaker_disjoint_latin_folders():
    folders = [language for languages in speech.LANGUAGES.values() for language in languages]
    assert len(folders) == len(set(folders)) == 14
    assert set(speech.LANGUAGES) == {"train", "validation", "test"}
    assert not set(folders) & {"ar", "he", "ml", "ru", "uk", "tn", "id", "nn"}
    assert len(speech.CLASSES) == 10 and len(set(speech.CLASSES)) == 10
    assert speech.CLIPS == {"train": 300, "validation": 60, "test": 60}


def tone(seconds: float, frequency: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def test_audible_extent_of_a_burst_in_silence_and_the_gap_rule():
    silence = np.zeros(int(0.5 * RATE))
    burst = tone(0.3, 440)
    start, stop = speech.audible_extent(np.concatenate([silence, burst, silence]), RATE)
    # the 3-frame smoothing lets the frame either side in (1/3 of the energy: -4.8 dB): one 10 ms frame each side
    assert abs(start / RATE - 0.5) <= 0.0101 and abs(stop / RATE - 0.8) <= 0.0101

    # a quieter second syllable 0.15 s later belongs to the word (geminates: "cap-pa") ...
    gap = np.zeros(int(0.15 * RATE))
    start, stop = speech.audible_extent(np.concatenate([silence, burst, gap, 0.3 * burst, silence]), RATE)
    assert abs(start / RATE - 0.5) <= 0.0101 and abs(stop / RATE - 1.25) <= 0.0101
    # ... a click 0.5 s after the word does not
    click = np.concatenate([silence, burst, np.zeros(RATE // 2), tone(0.01, 2000), silence])
    start, stop = speech.audible_extent(click, RATE)
    assert abs(stop / RATE - 0.8) <= 0.0101


def test_audible_extent_threshold_rises_above_a_noise_floor():
    # Hum 25 dB below the word over the whole file: with the plain peak - 30 dB rule the whole file would
    # count; the threshold is max(peak - 30, min(floor + 10, peak - 20)) = peak - 20 dB, above the hum.
    rng = np.random.default_rng(0)
    burst_rms = 0.5 / np.sqrt(2)
    hum = burst_rms * 10 ** (-25 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 150 * np.arange(2 * RATE) / RATE)
    audio = hum + 1e-6 * rng.standard_normal(2 * RATE)
    audio[int(0.7 * RATE) : int(1.1 * RATE)] += tone(0.4, 440)
    start, stop = speech.audible_extent(audio, RATE)
    assert abs(start / RATE - 0.7) <= 0.0101 and abs(stop / RATE - 1.1) <= 0.0101
    # hum only 15 dB below: the threshold is capped at peak - 20 dB, under the hum, so all of the file counts
    audio = 10 ** (10 / 20) * hum
    audio[int(0.7 * RATE) : int(1.1 * RATE)] += tone(0.4, 440)
    assert speech.audible_extent(audio, RATE) == (0, 2 * RATE)


def test_prepare_word_is_mono_resampled_trimmed_faded_and_unit_rms():
    rate = 44_100
    word = np.concatenate([np.zeros(int(0.4 * rate)), tone(0.25, 500, rate), np.zeros(int(0.6 * rate))])
    stereo = np.stack([word, 0.5 * word], axis=1)  # the mono mix is 0.75 * word
    got = speech.prepare_word(stereo, rate)
    assert abs(len(got) / RATE - 0.25) <= 0.021  # trimmed to the tone (± one frame each side)
    assert abs(np.sqrt(np.mean(got**2)) - 1) < 1e-12
    assert abs(got[0]) < 1e-9 and abs(got[-1]) < 0.05  # faded: raised cosine from 0, into the last sample
    long = speech.prepare_word(tone(3.0, 500, rate)[:, None], rate)
    assert len(long) == int(speech.MAX_EVENT_SECONDS * RATE)


def fake_words() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Unit-RMS tones (crest factor √2: no clip reaches the limiter), two speakers per class."""
    words = {}
    for index, label in enumerate(speech.CLASSES):
        found = []
        for speaker, extra in (("p", 0.0), ("q", 0.1)):
            found.append(
                (f"{speaker}/{label}.ogg", np.sqrt(2) * tone(0.2 + 0.05 * index + extra, 300 + 50 * index, RATE, 1))
            )
        words[label] = found
    return words


def test_make_clip_labels_are_the_placed_words_at_the_drawn_snr():
    words = fake_words()
    silent = {label: [(name, np.zeros_like(word)) for name, word in found] for label, found in words.items()}
    lengths = {name: len(word) for found in words.values() for name, word in found}
    counts = []
    for seed in range(40):
        rng, silent_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        audio, events, snrs = speech.make_clip(rng, words, speech.label_cycle(rng))
        noise, silent_events, _ = speech.make_clip(silent_rng, silent, speech.label_cycle(silent_rng))
        assert silent_events == events  # the draws do not depend on the words' samples
        assert audio.shape == (int(speech.SECONDS * RATE),) and audio.dtype == np.float32
        assert np.abs(audio).max() < 0.99  # not limited, so the clip is background + words
        counts.append(len(events))
        placed = audio.astype(np.float64) - noise.astype(np.float64)
        inside = np.zeros(len(audio), bool)
        assert len(snrs) == len(events) and [e[0] for e in events] == sorted(e[0] for e in events)
        for index, ((onset, offset, label, name), drawn) in enumerate(zip(events, snrs)):
            assert label in speech.CLASSES and name.endswith(f"/{label}.ogg")
            assert onset >= 0.2 and offset <= speech.SECONDS - 0.1 + 1e-9
            assert abs((offset - onset) - lengths[name] / RATE) <= 0.0005 + 1e-9
            if index:
                assert onset >= events[index - 1][1] + 0.2 - 1e-9
            start = round(onset * RATE)
            span = slice(start, start + lengths[name])
            inside[span] = True
            snr = 20 * np.log10(
                np.sqrt(np.mean(placed[span] ** 2)) / np.sqrt(np.mean(noise[span].astype(np.float64) ** 2))
            )
            assert speech.SNR_DB[0] <= drawn <= speech.SNR_DB[1]
            assert snr == pytest.approx(drawn, abs=0.02)  # float32 rounding of the clip
        assert np.abs(placed[~inside]).max() < 1e-6  # nothing outside the labels but the background
    assert min(counts) == 0 and max(counts) == 4


def test_classes_come_in_shuffled_rounds_so_a_split_is_balanced():
    cycle = speech.label_cycle(np.random.default_rng(0))
    rounds = [[next(cycle) for _ in speech.CLASSES] for _ in range(50)]
    assert all(sorted(labels) == sorted(speech.CLASSES) for labels in rounds)
    assert len({tuple(labels) for labels in rounds}) > 40  # shuffled, not one fixed order

    placed: list = []
    clips = list(speech.split_clips(np.random.default_rng(1), fake_words(), 60, placed))
    assert len(clips) == len(placed) == 60 and all(events == clip[1] for clip, (events, _) in zip(clips, placed))
    counts = {label: 0 for label in speech.CLASSES}
    for events, _ in placed:
        for _, _, label, _ in events:
            counts[label] += 1
    assert max(counts.values()) - min(counts.values()) <= 2  # a round in progress, a word that did not fit


def write_fake_klettres(root: Path) -> None:
    """Three one-speaker folders of tone 'letters' (44.1 kHz, one stereo) with silence around each."""
    for language_index, language in enumerate(("l1", "l2", "l3")):
        entries = []
        for index, label in enumerate(speech.CLASSES):
            file = f"{language}/alpha/a-{index}.wav"
            word = tone(0.2 + 0.03 * index, 200 + 90 * index + 7 * language_index, 44_100)
            audio = np.concatenate([np.zeros(4410), word, np.zeros(8820)])
            (root / language / "alpha").mkdir(parents=True, exist_ok=True)
            sf.write(root / file, np.stack([audio, audio], 1) if language == "l2" else audio, 44_100)
            entries.append((label.upper(), file))
        (root / language / "sounds.xml").write_text(sounds_xml(entries), encoding="utf-8")


def test_build_from_a_fake_package_reads_back_and_is_byte_reproducible(tmp_path, monkeypatch):
    write_fake_klettres(tmp_path / "klettres")
    monkeypatch.setattr(speech, "LANGUAGES", {"train": ("l1",), "validation": ("l2",), "test": ("l3",)})
    monkeypatch.setattr(speech, "CLIPS", {"train": 12, "validation": 6, "test": 6})
    summary = speech.build(tmp_path / "klettres", tmp_path / "one", seed=3)
    speech.build(tmp_path / "klettres", tmp_path / "two", seed=3)

    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert one == two and len(one) == 12 + 6 + 6 + 6 + 2
    for path in one:
        if path.name != "desed.yaml":  # it names its own folder
            assert (tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes(), path

    for name, clips in speech.CLIPS.items():
        split = read_corpus_split(tmp_path / "one", name)  # the workflow's reader; classes from corpus.json
        assert split.classes == speech.CLASSES and not split.issues
        assert len(split.files) == clips and split.positive_files()
        item = summary["splits"][name]
        assert item["languages"] == list(speech.LANGUAGES[name])
        assert item["recordings"] == {label: 1 for label in speech.CLASSES}
        assert sum(item["events"].values()) == sum(len(events) for events in split.strong.values())
        lengths = [e.offset - e.onset for events in split.strong.values() for e in events]
        assert all(0.2 - 0.021 <= length <= 0.2 + 0.03 * 9 + 0.021 for length in lengths)  # the tones, trimmed
    assert speech.build.__doc__ and summary["classes"] == list(speech.CLASSES)

    (tmp_path / "klettres" / "l3" / "alpha" / "a-3.wav").unlink()  # CLASSES[3] == "e"
    with pytest.raises(SystemExit, match=r"l3/sounds.xml: no recording of \['e'\]"):
        speech.build(tmp_path / "klettres", tmp_path / "three")
