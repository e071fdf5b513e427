"""`audioenc eval MODEL --data DIR`: a codec measured as codec papers report it, beside reference systems.

Every audio file under DIR (its first --max-seconds) goes through the codec at every bitrate it
supports and through reference systems (the input itself, Opus at 6 kbps, 8 kHz μ-law, the
untrained model). Each reconstruction is scored with SI-SDR, DAC's mel and multi-resolution STFT
distances and, with the evaluation extra installed, ViSQOL (audio mode; speech mode for
--content speech, which adds PESQ wide-band, STOI and ESTOI); 32-channel files add the spatial
errors. The table shows means over files with 95 % bootstrap intervals; --out writes
per_file.csv and evaluation.json, and --report an HTML listening report beside them. A non-empty
--out is refused unless --overwrite; --out is checked before anything is computed, and its files
appear together at the end (an error or Ctrl-C leaves --out as it was).
"""

from __future__ import annotations

import argparse

from audioenc.validation import number

OUTPUT_FILES = ("per_file.csv", "evaluation.json", "report.html")
"""What eval writes into --out (an --overwrite removes those of an earlier evaluation it does not write again)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="standard codec measures (ViSQOL, PESQ, STOI, SI-SDR, mel/STFT distance) with baselines",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model_best.safetensors, checkpoint_*.pt or a run folder")
    parser.add_argument("--data", required=True, help="audio folder (every usable file is evaluated)")
    parser.add_argument(
        "--content",
        choices=("general", "music", "speech"),
        default="general",
        help="what the files hold: picks ViSQOL's mode; speech adds PESQ and STOI (default general)",
    )
    parser.add_argument(
        "--max-files",
        type=number(minimum=1, integer=True),
        default=None,
        help="evaluate at most this many files (sorted)",
    )
    parser.add_argument("--max-seconds", type=number(above=0), default=10.0, help="seconds of each file (default 10)")
    parser.add_argument(
        "--references",
        default="input,opus,mulaw,untrained",
        help="reference systems, comma-separated from input, opus, mulaw, untrained, or none",
    )
    parser.add_argument("--no-perceptual", action="store_true", help="distances only (no ViSQOL/PESQ/STOI)")
    parser.add_argument("--out", default=None, help="folder for per_file.csv, evaluation.json (and report.html)")
    parser.add_argument("--report", action="store_true", help="also write report.html (needs --out)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier evaluation's results in --out (default: refuse a non-empty --out)",
    )
    parser.add_argument(
        "--resamples", type=number(minimum=1, integer=True), default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.audio.manifest import require_usable, scan
    from audioenc.core.distributed import resolve_device
    from audioenc.errors import UserError
    from audioenc.metrics.file_evaluation import EvalSettings, evaluate_files, format_summary
    from audioenc.metrics.systems import evaluation_systems
    from audioenc.models.files import load_codec
    from audioenc.outputs import check_output

    if args.report and not args.out:
        raise UserError("--report writes report.html into the --out folder; give --out DIR")
    if args.out:
        check_output(args.out, "--out", overwrite=args.overwrite, folder=True)  # before minutes of evaluation
    device = resolve_device(args.device)
    settings = EvalSettings(
        content=args.content, perceptual=not args.no_perceptual, max_seconds=args.max_seconds, resamples=args.resamples
    )
    model, config = load_codec(args.model)
    manifest = scan(args.data)
    files = [Path(manifest.root) / entry.path for entry in require_usable(manifest)]
    if args.max_files is not None:
        files = files[: args.max_files]
    systems = evaluation_systems(model, config, args.references, device)
    evaluation = evaluate_files(
        files, systems, config.sample_rate, config.channels, settings, progress=not args.no_progress
    )
    summary = evaluation.summary(args.resamples)
    print(format_summary(summary, evaluation.measures))
    print(f"channels scored: {evaluation.scored_channels()}")
    for name, reason in evaluation.skipped.items():
        print(f"not computed: {name}: {reason}")
    for reason in evaluation.failed_files.values():
        print(f"file left out: {reason}")  # each reason starts with the file's path
    if args.out:
        write_outputs(args, files, systems, evaluation)
    return 0


def write_outputs(args: argparse.Namespace, files: list, systems: list, evaluation) -> None:
    """``per_file.csv``, ``evaluation.json`` (and ``report.html``) written aside and moved into --out
    together, so that --out never holds half of them or a stale page of an earlier evaluation."""
    from pathlib import Path

    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.outputs import staged_folder

    out = Path(args.out)
    with staged_folder(out, replaces=OUTPUT_FILES) as staging:
        evaluation.write(
            staging,
            args.resamples,
            extra={
                "model": str(args.model),
                "data": str(args.data),
                "content": args.content,
                "max_seconds": args.max_seconds,
            },
        )
        if args.report:
            # imported when the command runs, not at start-up: `audioenc --help` stays fast
            from audioenc.listening_report import write_report

            write_report(
                args.model,
                files,
                staging,
                systems=systems,
                evaluation=evaluation,
                max_seconds=min(args.max_seconds, 5.0),
            )
    print(f"per-file results: {out / 'per_file.csv'}, summary: {out / 'evaluation.json'}")
    if args.report:
        print(f"listening report: {out / 'report.html'}")
