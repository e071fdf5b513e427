"""`audioenc synth …`: write the embedded corpora (no download).

* ``audioenc synth eigenscape-like OUT [--scenes N] [--seconds S] [--seed K]``: 32-channel,
  48 kHz, 24-bit em32 scenes simulated with pyroomacoustics
  (:mod:`audioenc.audio.synth_scenes`).
* ``audioenc synth events OUT [--clips N] [--seed K]``: weak- and strong-labelled 24 kHz event
  clips with DESED-style TSVs and train / validation / test splits
  (:mod:`audioenc.audio.synth_events`).

Both are deterministic for a seed and reuse a complete corpus already in OUT.
"""

from __future__ import annotations

import argparse
import sys

from audioenc.config import MAX_SEED
from audioenc.validation import number


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command and its two corpora."""
    parser = subparsers.add_parser("synth", help="write an embedded synthetic corpus (eigenscape-like, events)")
    corpora = parser.add_subparsers(dest="corpus", metavar="CORPUS")
    corpora.required = True

    scenes = corpora.add_parser(
        "eigenscape-like",
        help="32-ch 48 kHz 24-bit em32 room scenes (8 EigenScape-like classes)",
    )
    scenes.add_argument("out", metavar="OUT", help="output directory (empty, new, or an earlier corpus)")
    scenes.add_argument(
        "--scenes", type=number(minimum=1, integer=True), default=8, help="number of scenes (default 8, one per class)"
    )
    scenes.add_argument(
        "--seconds", type=number(above=0), default=10.0, help="length of each scene in seconds (default 10)"
    )
    scenes.add_argument(
        "--seed", type=number(minimum=0, maximum=MAX_SEED, integer=True), default=0, help="seed (default 0)"
    )
    scenes.set_defaults(func=run_scenes)

    events = corpora.add_parser("events", help="24 kHz weak/strong-labelled event clips with DESED-style TSVs")
    events.add_argument("out", metavar="OUT", help="output directory")
    events.add_argument(
        "--clips",
        type=number(minimum=3, integer=True),
        default=None,
        help="total number of clips, split 60/20/20 (default: the corpus default)",
    )
    events.add_argument(
        "--seed", type=number(minimum=0, maximum=MAX_SEED, integer=True), default=0, help="seed (default 0)"
    )
    events.set_defaults(func=run_events)


def run_scenes(args: argparse.Namespace) -> int:
    """Write the eigenscape-like corpus to ``args.out``."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.audio.synth_scenes import synthesize_eigenscape_corpus

    try:
        out = synthesize_eigenscape_corpus(args.out, args.scenes, args.seconds, args.seed, progress=True)
    except (ValueError, FileExistsError) as error:
        print(f"audioenc synth eigenscape-like: error: {error}", file=sys.stderr)
        return 2
    print(f"eigenscape-like corpus: {args.scenes} scenes x {args.seconds:g} s, 32 ch, 48 kHz, PCM-24 in {out}")
    return 0


def run_events(args: argparse.Namespace) -> int:
    """Write the event corpus to ``args.out``."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.audio.synth_events import synthesize_event_corpus

    kwargs = {"seed": args.seed}
    if args.clips is not None:
        kwargs["clips"] = args.clips
    try:
        out = synthesize_event_corpus(args.out, **kwargs)
    except (ValueError, FileExistsError) as error:
        print(f"audioenc synth events: error: {error}", file=sys.stderr)
        return 2
    print(f"event corpus in {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen corpus (argparse sets ``func`` per corpus; kept for the CLI convention)."""
    return run_scenes(args) if args.corpus == "eigenscape-like" else run_events(args)
