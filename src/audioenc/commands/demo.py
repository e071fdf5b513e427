"""`audioenc demo`: the whole story on embedded data (see :mod:`audioenc.story`), or with
``--short`` only the short encoder demo (clip summary against the frame view, see
:mod:`audioenc.timing.demo`).
"""

from __future__ import annotations

import argparse

from audioenc.config import MAX_SEED
from audioenc.validation import number


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole story: short demo, a small codec, the lab workflow with its encoder",
        description=(
            "Without --short: the short encoder demo, then a small codec trained with `audioenc train "
            "--1ch --preset small`, then the lab workflow with that codec's encoder frozen (about 10 "
            "minutes on 2 CPU cores; default folder runs/story). With --short: only the short encoder "
            "demo (under a minute): synthetic clips with short events at known times, log-mel features, "
            "a small frame scorer, mean- and max-pooled clip scores beside the frame scores; writes "
            "clips.tsv, demo.png, demo.json and note.md (default folder runs/demo)."
        ),
    )
    parser.add_argument("--short", action="store_true", help="run the short encoder demo only")
    parser.add_argument("--out", default=None, help="run folder (default: runs/story, or runs/demo with --short)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while the codec trains")
    parser.add_argument(
        "--seed",
        type=number(minimum=0, maximum=MAX_SEED, integer=True),
        default=0,
        help="seed for the clips and the frame scorer (default 0)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the short demo into ``args.out``; returns the exit status."""
    if args.short:
        # imported when the command runs, not at start-up: `audioenc --help` stays fast
        from audioenc.timing.demo import DemoConfig, run_short_demo

        run_short_demo(args.out or "runs/demo", DemoConfig(seed=args.seed))
        return 0
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.story import run_story

    run_story(args.out or "runs/story", seed=args.seed, progress=not args.no_progress)
    return 0
