"""Lab workflow of the Speech and Audio Encoders track.

Run from the repository root, exactly as the track writes it:

    academy/.venv/bin/python academy/labs/speech-and-audio-encoders/src/speech_audio_encoder_workflow.py

Seven steps in the track's order (pooling choice, frame view, weak-label encoder, boundaries on
positive clips, frozen probe vs scratch, adaptation only if needed, the note), each writing its
artifact into runs/workflow/ (or --out DIR); read report.md last. Options are those of
``audioenc workflow`` (--data DIR or a DESED_task data config, --encoder, --out, --seed, --fast,
--config FILE, SECTION.KEY=VALUE overrides such as weak.max_epochs=60); the work is done by the
library, ``audioenc.timing.workflow``. The report says "no decision" when a model it would compare
learned nothing.
"""

from __future__ import annotations

import sys

try:
    from audioenc.cli import main
except ModuleNotFoundError as error:  # the package is missing: say how to get it
    if error.name != "audioenc":
        raise
    sys.exit(
        "speech_audio_encoder_workflow.py: the audioenc package is not installed in this Python "
        f"({sys.executable}). Run `make setup` in the repository root, then use academy/.venv/bin/python."
    )

if __name__ == "__main__":
    sys.exit(main(["workflow", *sys.argv[1:]]))
