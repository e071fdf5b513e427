"""`audioenc report MODEL --data DIR`: a self-contained HTML listening report (report.html).

A handful of files from DIR, original beside the codec's reconstructions (lowest and full bitrate)
with audio players and spectrograms (and per-channel level/coherence for multichannel audio), the
metrics table, the model's configuration and the run's validation curve; everything embedded,
so the page opens from disk without a server or a network. --check loads it in headless Chromium,
verifies that every player loads and no error occurs, and saves a screenshot beside it.
"""

from __future__ import annotations

import argparse

from audioenc.validation import number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="HTML listening report: originals vs reconstructions, spectrograms, metrics",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="a run folder, model_best.safetensors or checkpoint_*.pt")
    parser.add_argument("--data", required=True, help="audio folder to take the clips from")
    parser.add_argument("--out", default=None, help="folder for report.html (default: MODEL's run folder)")
    parser.add_argument("--files", type=number(minimum=1, integer=True), default=4, help="clips shown (default 4)")
    parser.add_argument("--seconds", type=number(above=0), default=5.0, help="seconds of each clip (default 5)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a report.html (and report.png) already in the output folder"
    )
    parser.add_argument(
        "--check", action="store_true", help="check the page in headless Chromium and save report.png beside it"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.audio.manifest import require_usable, scan
    from audioenc.listening_report import check_in_browser, write_listening_report
    from audioenc.outputs import check_output

    model = Path(args.model)
    out = Path(args.out) if args.out else (model if model.is_dir() else model.parent)
    # The folder may hold other files (a run folder does): the rule applies to the files written here.
    check_output(out, "--out", overwrite=True, folder=True)
    for name in ("report.html", *(("report.png",) if args.check else ())):
        check_output(out / name, "the report", overwrite=args.overwrite)
    manifest = scan(args.data)
    files = [Path(manifest.root) / entry.path for entry in require_usable(manifest)]
    report = write_listening_report(model, files, out, max_files=args.files, max_seconds=args.seconds)
    page = report.page
    for reason in report.left_out.values():
        print(f"file left out: {reason}")  # each reason starts with the file's path
    print(f"listening report: {page}")
    if args.check:
        check = check_in_browser(page)
        print(
            f"browser check: {check.result['loaded']}/{check.result['players']} players loaded, "
            f"{len(check.result['errors'])} error(s); screenshot {check.screenshot}"
        )
        if not check.ok:
            print(f"audioenc report: the page did not pass its browser check: {check.result}", file=sys.stderr)
            return 1
    return 0
