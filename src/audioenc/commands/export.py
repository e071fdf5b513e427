"""`audioenc export RUN --format FORMAT OUT`: a trained codec in another framework's format.

RUN: anything `audioenc encode --model` accepts (a run folder, model_best.safetensors,
checkpoint_*.pt). Formats:

  hf    a Hugging Face transformers folder: EncodecModel.from_pretrained(OUT) and
        EncodecFeatureExtractor.from_pretrained(OUT) load it offline; same codes and audio as
        audioenc (checked before OUT is kept). RVQ codecs with 1 or 2 channels only (EncodecModel
        has codebooks and takes at most 2 channels). Needs `pip install 'audioenc[hf]'`.
  onnx  any codec, continuous and 32-channel ones too.

OUT must not exist (or be an empty folder); a refused or failed export leaves nothing behind.
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
        "export", help="write a trained codec for another framework (hf: transformers EncodecModel; onnx)",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="RUN", help="run folder, model_best.safetensors or checkpoint_*.pt")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="hf or onnx")
    parser.add_argument("output", metavar="OUT", help="where to write the export")
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
    from audioenc.codec_io import load_codec

    export = exporter(args.format)  # a missing optional package is refused before the model loads
    model, config = load_codec(args.model)
    try:
        summary = export(model, config, args.output)
    except UserError as error:  # the exporter does not know where the codec came from: name it
        raise UserError(f"{args.model}: {error}") from error
    print(summary)
    return 0
