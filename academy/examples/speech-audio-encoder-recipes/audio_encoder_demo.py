"""Short encoder demo of the Speech and Audio Encoders track.

Run from the repository root, exactly as the track writes it:

    academy/.venv/bin/python academy/examples/speech-audio-encoder-recipes/audio_encoder_demo.py

It compares the clip summary (mean and max pooling) with the frame view on clips with short
events at known times, prints a table, and writes clips.tsv, demo.png, demo.json and the start
of your note (note.md) into runs/demo/ (or --out DIR, --seed K). It is ``audioenc demo --short``
with these arguments (:mod:`audioenc.commands.demo`; the work is done by ``audioenc.timing.demo``).
"""

from __future__ import annotations

import sys

try:
    from audioenc.cli import main
except ModuleNotFoundError as error:  # the package is missing: say how to get it
    if error.name != "audioenc":
        raise
    sys.exit(
        "audio_encoder_demo.py: the audioenc package is not installed in this Python "
        f"({sys.executable}). Run `make setup` in the repository root, then use academy/.venv/bin/python."
    )

if __name__ == "__main__":
    sys.exit(main(["demo", "--short", *sys.argv[1:]]))
