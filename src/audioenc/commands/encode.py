"""`audioenc encode IN OUT --model PATH`: an audio file to codec latents or codes.

IN: any libsndfile format, any sample rate (resampled to 24 kHz with soxr), any length, with the
model's channel count. OUT: ``.safetensors`` or ``.npz`` holding ``latents [1, D, F]`` (continuous
model) or ``codes [1, K, F]`` (RVQ) plus the metadata :mod:`audioenc.codec_io` describes (lengths,
rates, the model config and its hashes). A causal model streams the file in chunks with state
carried across them (same frames as a one-shot encode, bounded memory); a non-causal one is
encoded in one pass. --backend onnxruntime computes the same frames with ONNX Runtime (CPU) from
an `audioenc export --format onnx` folder of the model (--onnx DIR; default: a temporary export).
"""

from __future__ import annotations

import argparse
import math
import sys

from audioenc.commands.backend import add_backend_arguments, check_backend_arguments, engine_for
from audioenc.errors import UserError
from audioenc.validation import number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="encode an audio file to latents/codes (.safetensors or .npz)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IN", help="audio file (wav, flac, ...)")
    parser.add_argument("output", metavar="OUT", help="encoded file: .safetensors or .npz")
    parser.add_argument(
        "--model",
        required=True,
        help="model_best.safetensors (+ .json), checkpoint_*.pt, or a run folder of `audioenc train`",
    )
    parser.add_argument(
        "--bandwidth",
        type=number(above=0),
        default=None,
        help="RVQ models: target kbps (uses the most codebooks that fit; default: all codebooks)",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=number(above=0),
        default=2.0,
        help="streaming chunk length in seconds, rounded up to whole frames (default 2)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    add_backend_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(func=run)


def codebooks_for(model, bandwidth: float) -> int:
    """The codebooks ``--bandwidth`` allows; a bandwidth outside the model's range is the user's to change."""
    try:
        return model.quantizer.n_q_for(bandwidth, model.frame_rate)
    except ValueError as error:
        raise UserError(f"--bandwidth {bandwidth:g} does not suit this model: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Run the command; bad input exits 2 with one line naming it (see audioenc.cli)."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.codec_io import check_encoded_output, chunk_frames_for, encode_file
    from audioenc.models.files import load_codec
    from audioenc.outputs import check_output

    check_encoded_output(args.output)  # an unusable OUT is refused before the model loads
    check_output(args.output, "OUT", overwrite=args.overwrite)
    check_backend_arguments(args)
    model, config = load_codec(args.model)
    chunk_frames = chunk_frames_for(args.chunk_seconds, model.frame_rate)
    n_q = None
    if args.bandwidth is not None:
        if not model.quantizer.discrete:
            raise UserError("--bandwidth is for models with codes; this model has continuous latents.")
        n_q = codebooks_for(model, args.bandwidth)
    if not model.encoder.causal and not args.quiet:
        print(
            "audioenc encode: the model is not causal; encoding the whole file in one pass "
            "(memory grows with the file's length).",
            file=sys.stderr,
        )
    with engine_for(args, model, config) as engine:
        result = encode_file(
            args.input,
            args.output,
            model,
            config,
            chunk_frames=chunk_frames,
            n_q=n_q,
            device=args.device,
            engine=engine,
        )
    header = result.header
    if not args.quiet:
        what = (
            f"codes [1, {header.n_q}, {header.num_frames}] ({header.bandwidth_kbps:g} kbps)"
            if header.kind == "codes"
            else f"latents [1, {config.dimension}, {header.num_frames}]"
        )
        level = f", level {20 * math.log10(header.scale):.1f} dBFS RMS (stored)" if model.normalize else ""
        print(
            f"{result.path}: {what}, {header.num_samples / header.sample_rate:.3f} s at "
            f"{header.sample_rate} Hz (source {header.source_sample_rate} Hz), {result.chunks} chunk(s), "
            f"{header.streaming}{level}"
        )
    return 0
