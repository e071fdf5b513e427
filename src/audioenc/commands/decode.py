"""`audioenc decode IN OUT --model PATH`: codec latents or codes back to an audio file.

IN: a ``.safetensors`` / ``.npz`` written by ``audioenc encode``. OUT: an audio file whose format
follows its suffix (``.wav``, ``.flac``, ...), at the model's 24 kHz and the encoded length, or at
the source file's rate and length with ``--source-rate``. The model must be the one that encoded
IN (checked by the config and weights hashes in IN). Decoding streams frame blocks, so memory does
not grow with the file's length (causal models). --backend onnxruntime decodes with ONNX Runtime
(CPU) from an `audioenc export --format onnx` folder of the model (--onnx DIR; default: a
temporary export).

Nothing in IN is trusted: its header, tensor and every value are checked against the model before
any audio is computed, and OUT is written under a temporary name, renamed at the end, so a refusal
leaves no OUT behind.
"""

from __future__ import annotations

import argparse
import sys

from audioenc.commands.backend import add_backend_arguments, check_backend_arguments, engine_for
from audioenc.validation import number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode latents/codes back to audio",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IN", help="encoded file (.safetensors or .npz) from `audioenc encode`")
    parser.add_argument("output", metavar="OUT", help="audio file to write (.wav, .flac, ...)")
    parser.add_argument(
        "--model",
        required=True,
        help="the model that encoded IN: model_best.safetensors, checkpoint_*.pt or a run folder",
    )
    parser.add_argument(
        "--source-rate",
        action="store_true",
        help="resample to the source file's sample rate and length (default: the model's 24 kHz)",
    )
    parser.add_argument(
        "--subtype", default="FLOAT", help="sample encoding: FLOAT (default, never clips), PCM_16, PCM_24, ..."
    )
    parser.add_argument(
        "--chunk-seconds", type=number(above=0), default=2.0, help="frames decoded per step, in seconds (default 2)"
    )
    parser.add_argument(
        "--allow-other-weights",
        action="store_true",
        help="decode with a model of the same configuration but other weights",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    add_backend_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; bad input exits 2 with one line naming it (see audioenc.cli)."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.codec_io import check_audio_output, chunk_frames_for, decode_file
    from audioenc.models.files import load_codec
    from audioenc.outputs import check_output

    check_audio_output(args.output, args.subtype)  # an unusable OUT is refused before the model loads
    check_output(args.output, "OUT", overwrite=args.overwrite)
    check_backend_arguments(args)
    model, config = load_codec(args.model)
    chunk_frames = chunk_frames_for(args.chunk_seconds, model.frame_rate)
    with engine_for(args, model, config) as engine:
        result = decode_file(
            args.input,
            args.output,
            model,
            config,
            chunk_frames=chunk_frames,
            to_source_rate=args.source_rate,
            subtype=args.subtype,
            allow_other_weights=args.allow_other_weights,
            device=args.device,
            engine=engine,
        )
    if result.clipped_samples:
        print(
            f"audioenc decode: warning: {result.clipped_samples} sample(s) beyond ±1.0 were clipped for "
            f"{args.subtype}; use --subtype FLOAT to keep them.",
            file=sys.stderr,
        )
    if not args.quiet:
        print(f"{result.path}: {result.frames} frames x {result.channels} channel(s) at {result.sample_rate} Hz")
    return 0
