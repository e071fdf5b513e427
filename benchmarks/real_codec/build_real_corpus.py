"""Real recordings nobody here made, for judging a codec: music and speech folders for `audioenc eval`.

Sources (nothing is downloaded by this script; it reads what you already have):

* **music** — the ten reference excerpts of TCDAudio14 (Sloan et al., IEEE Trans. Broadcasting
  2017) that google/visqol ships as its conformance test data (Apache-2.0 repository): 48 kHz
  stereo, ~10 s each (strauss, steely, sopr, ravel, moonlight, harpsichord, guitar, glock,
  contrabassoon, castanets). Give a google/visqol git directory or checkout with ``--visqol``.
* **speech** — ``CA01_01.wav`` from the same repository (clean read speech), and the eight spoken
  channel names of Debian's ``alsa-utils`` (``/usr/share/sounds/alsa``, GPL-2+; a man's voice,
  ~1.5 s each): ``apt-get download alsa-utils`` and give the ``.deb`` with ``--alsa-deb``.

Audio is copied unchanged (``audioenc eval`` resamples and downmixes as the codec needs); the audio
stays out of the repository (this script is what is committed).

Usage::

    python benchmarks/real_codec/build_real_corpus.py --visqol /work/.mirror/google+visqol/repo \\
        --alsa-deb alsa-utils_1.2.8-1_amd64.deb --out /tmp/real_codec
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

MUSIC = [
    "strauss48_stereo",
    "steely48_stereo",
    "sopr48_stereo",
    "ravel48_stereo",
    "moonlight48_stereo",
    "harpsichord48_stereo",
    "guitar48_stereo",
    "glock48_stereo",
    "contrabassoon48_stereo",
    "castanets48_stereo",
]
ALSA_SPOKEN = [
    "Front_Center",
    "Front_Left",
    "Front_Right",
    "Rear_Center",
    "Rear_Left",
    "Rear_Right",
    "Side_Left",
    "Side_Right",
]


def visqol_file(source: Path, relative: str) -> bytes:
    """A file of a google/visqol checkout (a folder with testdata/) or bare git directory."""
    if (source / relative).is_file():
        return (source / relative).read_bytes()
    return subprocess.run(
        ["git", f"--git-dir={source}", "show", f"HEAD:{relative}"], check=True, capture_output=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visqol", type=Path, required=True, help="google/visqol checkout or git directory")
    parser.add_argument("--alsa-deb", type=Path, default=None, help="alsa-utils .deb (apt-get download alsa-utils)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    music, speech = args.out / "music", args.out / "speech"
    music.mkdir(parents=True, exist_ok=True)
    speech.mkdir(parents=True, exist_ok=True)
    for name in MUSIC:
        (music / f"{name}.wav").write_bytes(
            visqol_file(args.visqol, f"testdata/conformance_testdata_subset/{name}.wav")
        )
    (speech / "CA01_01.wav").write_bytes(visqol_file(args.visqol, "testdata/clean_speech/CA01_01.wav"))
    if args.alsa_deb:
        with tempfile.TemporaryDirectory() as unpacked:
            subprocess.run(["dpkg-deb", "-x", str(args.alsa_deb), unpacked], check=True)
            for name in ALSA_SPOKEN:
                source = Path(unpacked) / "usr/share/sounds/alsa" / f"{name}.wav"
                (speech / f"alsa_{name}.wav").write_bytes(source.read_bytes())
    print(
        f"{len(list(music.glob('*.wav')))} music files in {music}, {len(list(speech.glob('*.wav')))} speech files "
        f"in {speech}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
