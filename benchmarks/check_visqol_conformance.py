"""Is the ViSQOL that `audioenc eval` uses the reference ViSQOL? Its conformance values, checked.

google/visqol (the reference C++ implementation) pins its own output on a subset of its test
files (``src/include/conformance.h``, conformance version v333). This script scores the same file
pairs with the Python port audioenc uses (``visqol-python``, the evaluation extra) and, for the
mono downmix, through :func:`audioenc.metrics.perceptual.score` (the path `audioenc eval` takes),
and prints expected, measured and the difference.

Usage (the test audio is in a google/visqol checkout, ``testdata/``; nothing is downloaded)::

    python benchmarks/check_visqol_conformance.py --testdata PATH/TO/visqol/testdata
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import soundfile as sf

AUDIO_MODE_V333 = [  # (reference, degraded, expected MOS-LQO) from conformance.h
    ("strauss48_stereo", "strauss48_stereo_lp35", 1.3888791489130758),
    ("steely48_stereo", "steely48_stereo_lp7", 2.2501683734385183),
    ("sopr48_stereo", "sopr48_stereo_256kbps_aac", 4.68228969737946),
    ("ravel48_stereo", "ravel48_stereo_128kbps_opus", 4.465141897255348),
    ("moonlight48_stereo", "moonlight48_stereo_128kbps_aac", 4.684292801646114),
    ("harpsichord48_stereo", "harpsichord48_stereo_96kbps_mp3", 4.22374532766003),
    ("guitar48_stereo", "guitar48_stereo_64kbps_aac", 4.349722308064298),
    ("glock48_stereo", "glock48_stereo_48kbps_aac", 4.332452943882108),
    ("contrabassoon48_stereo", "contrabassoon48_stereo_24kbps_aac", 2.346868205375293),
    ("castanets48_stereo", "castanets48_stereo", 4.732101253042348),
]
SPEECH_MODE_V333 = [("CA01_01", "transcoded_CA01_01", 3.3129234313964844)]  # lattice model (the default)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testdata", required=True, type=Path, help="testdata/ of a google/visqol checkout")
    args = parser.parse_args()
    audio_dir = args.testdata / "conformance_testdata_subset"
    speech_dir = args.testdata / "clean_speech"
    if not audio_dir.is_dir() or not speech_dir.is_dir():
        print(
            f"{args.testdata}: no conformance_testdata_subset/ and clean_speech/; give a google/visqol "
            "checkout's testdata folder",
            file=sys.stderr,
        )
        return 2
    from visqol import VisqolApi

    from audioenc.metrics.perceptual import score

    api = VisqolApi()
    api.create(mode="audio")
    print(f"{'mode':7} {'degraded':36} {'expected':>9} {'file API':>9} {'diff':>9} {'audioenc':>9} {'s':>5}")
    worst = 0.0
    for reference, degraded, expected in AUDIO_MODE_V333:
        start = time.perf_counter()
        measured = api.measure(str(audio_dir / f"{reference}.wav"), str(audio_dir / f"{degraded}.wav")).moslqo
        ours = _ours(score, "visqol_audio", audio_dir / f"{reference}.wav", audio_dir / f"{degraded}.wav")
        worst = max(worst, abs(measured - expected))
        print(
            f"{'audio':7} {degraded:36} {expected:9.6f} {measured:9.6f} {measured - expected:+9.6f} {ours:9.6f} "
            f"{time.perf_counter() - start:5.1f}"
        )
    speech = VisqolApi()
    speech.create(mode="speech")
    for reference, degraded, expected in SPEECH_MODE_V333:
        start = time.perf_counter()
        measured = speech.measure(str(speech_dir / f"{reference}.wav"), str(speech_dir / f"{degraded}.wav")).moslqo
        ours = _ours(score, "visqol_speech", speech_dir / f"{reference}.wav", speech_dir / f"{degraded}.wav")
        print(
            f"{'speech':7} {degraded:36} {expected:9.6f} {measured:9.6f} {measured - expected:+9.6f} {ours:9.6f} "
            f"{time.perf_counter() - start:5.1f}"
        )
    print(f"largest audio-mode difference from the reference: {worst:.2e}")
    return 0


def _ours(score, name: str, reference: Path, degraded: Path) -> float:
    """audioenc's path: the mono downmix (what the reference does with stereo files), resampled by
    :func:`~audioenc.metrics.perceptual.score` to the measure's rate (speech mode: 16 kHz; the file
    API scores the 48 kHz speech file at 48 kHz, with a warning)."""
    y, rate = sf.read(reference, always_2d=True)
    y_hat, rate_hat = sf.read(degraded, always_2d=True)
    assert rate == rate_hat
    return score(name, y.mean(axis=1)[None], y_hat.mean(axis=1)[None], rate)


if __name__ == "__main__":
    sys.exit(main())
