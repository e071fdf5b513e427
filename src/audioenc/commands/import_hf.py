"""`audioenc import-hf DIR RUN`: a transformers EncodecModel folder as an audioenc run folder.

DIR: a local EncodecModel snapshot (your own download of facebook/encodec_24khz, or a folder
written by `audioenc export --format hf`); nothing is downloaded. RUN (new) receives
model_best.safetensors + model_best.json (what encode, decode, eval, HEAR and
`train --init-from` load), config.json and imported_from.json. The import is checked before RUN is
kept: the same codes and audio as the EncodecModel at every bandwidth.

Not importable (refused with the reason): time_group_norm models (EnCodec 48 kHz), kernel sizes
or compression other than EnCodec's, stereo models that normalise their input level.
Fine-tune with `audioenc train --1ch --init-from RUN --run-dir NEW` (the discriminator and the
optimiser start fresh: the released checkpoints do not include them).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-hf",
        help="turn a local transformers EncodecModel folder into an audioenc run folder",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="DIR", help="local EncodecModel folder (config.json + weights)")
    parser.add_argument("run_dir", metavar="RUN", help="new run folder to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.interop.hf import import_hf

    print(import_hf(args.source, args.run_dir))
    return 0
