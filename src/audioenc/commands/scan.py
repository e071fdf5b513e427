"""`audioenc scan DIR [--strict]`: report what a data directory holds and what is rejected.

Prints usable files, hours, sample rates, channel counts, encodings, scene classes and
each rejected file with its reason (corrupt, truncated, zero-length, not audio, NaN/Inf,
and with ``--channels`` / ``--min-seconds`` wrong channel count or too short), then one
summary line. Exit status: 0 when at least one file is usable (rejections are reported and
left out); 1 with ``--strict`` if any file was rejected; 2 when no file is usable (the
message says what was looked for and where). The manifest cache beside the data is
refreshed as a side effect.
"""

from __future__ import annotations

import argparse
import sys

from audioenc.validation import number


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scan`` sub-command."""
    parser = subparsers.add_parser(
        "scan",
        help="report the audio files of a directory (usable, hours, rates, channels, rejected files)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("directory", metavar="DIR", help="directory to scan recursively")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any file is rejected")
    parser.add_argument(
        "--channels",
        type=number(minimum=1, integer=True),
        default=None,
        help="reject files that do not have exactly this many channels (e.g. 32)",
    )
    parser.add_argument(
        "--min-seconds",
        type=number(minimum=0),
        default=0.0,
        help="reject files shorter than this many seconds (default: 0)",
    )
    parser.add_argument("--no-cache", action="store_true", help="probe every file again, ignoring the cache")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Scan ``args.directory``, print the report, return the exit status."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.audio.manifest import (
        NoUsableAudioError,
        format_report,
        require_usable,
        scan,
    )

    try:
        manifest = scan(args.directory, use_cache=not args.no_cache)
    except NotADirectoryError as error:
        print(f"audioenc scan: {error}", file=sys.stderr)
        return 2
    manifest = manifest.with_requirements(channels=args.channels, min_seconds=args.min_seconds)
    print(format_report(manifest))
    rejected = manifest.rejected
    try:
        require_usable(manifest)
    except NoUsableAudioError as error:
        print(f"audioenc scan: error: {error}", file=sys.stderr)
        return 2
    summary = (
        f"{len(manifest.usable)} usable, {len(rejected)} rejected "
        f"({manifest.total_seconds / 3600:.3f} h usable) under {manifest.root}"
    )
    if rejected and args.strict:
        print(
            f"audioenc scan: error (--strict): {summary}; fix or remove the rejected files listed above",
            file=sys.stderr,
        )
        return 1
    if rejected:
        print(f"warning: {summary}; rejected files are left out of training", file=sys.stderr)
    else:
        print(summary)
    return 0
