"""`audioenc export RUN --format FORMAT OUT`: a trained codec in another framework's format.

RUN: anything `audioenc encode --model` accepts (a run folder, model_best.safetensors,
checkpoint_*.pt). Formats:

  hf    a Hugging Face transformers folder: EncodecModel.from_pretrained(OUT) and
        EncodecFeatureExtractor.from_pretrained(OUT) load it offline; same codes and audio as
        audioenc (checked before OUT is kept). RVQ codecs with 1 or 2 channels only (EncodecModel
        has codebooks and takes at most 2 channels). Needs `pip install 'audioenc[hf]'`.
  onnx  any codec, continuous and 32-channel ones too.

OUT must not exist (or be an empty folder) unless --overwrite; a refused, failed or interrupted
export leaves nothing behind (with --overwrite the old OUT stays until the new one is complete).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from audioenc.errors import UserError

FORMATS = {"hf": ("audioenc.interop.hf", "export_hf"), "onnx": ("audioenc.interop.onnx", "export_onnx")}
"""``--format`` → (module, function); every exporter is ``export_X(model, config, out) -> summary``."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained codec for another framework (hf: transformers EncodecModel; onnx)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="RUN", help="run folder, model_best.safetensors or checkpoint_*.pt")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="hf or onnx")
    parser.add_argument("output", metavar="OUT", help="where to write the export")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUT folder once the new export is complete (default: refuse)",
    )
    parser.set_defaults(func=run)


def exporter(name: str) -> Callable:
    """The export function of ``--format name``, imported only now (transformers, onnx are optional)."""
    module_name, function = FORMATS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise UserError(f"--format {name} needs the package {error.name}: pip install -e '.[{name}]'") from None
    return getattr(module, function)


def run(args: argparse.Namespace) -> int:
    """Load RUN, export it; user mistakes exit 2 with one line (see audioenc.cli)."""
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.models.files import load_codec
    from audioenc.outputs import check_output, replacing

    out = check_output(args.output, "OUT", overwrite=args.overwrite, folder=True)
    export = exporter(args.format)  # a missing optional package is refused before the model loads
    model, config = load_codec(args.model)
    try:
        with replacing(out) as path:
            summary = export(model, config, path)
    except UserError as error:  # the exporter does not know where the codec came from: name it
        raise UserError(f"{args.model}: {error}") from error
    print(str(summary).replace(str(path), str(out)))  # an --overwrite export was written beside OUT, then moved
    return 0
