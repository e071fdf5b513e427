"""``--backend {torch,onnxruntime}`` and ``--onnx DIR``, shared by ``audioenc encode`` and ``decode``.

``--model`` always names the PyTorch codec: its configuration and weight hashes go into (and are
checked against) every container, whatever computes the frames. ``--backend onnxruntime`` computes
with ONNX Runtime on the CPU from ``--onnx DIR``, a folder ``audioenc export RUN --format onnx DIR``
wrote from the same model (refused otherwise); without ``--onnx`` the model is exported to a
temporary folder first (seconds for small models, longer for the paper model).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from audioenc.errors import UserError

if TYPE_CHECKING:  # the CLI imports every command at start-up: no torch here
    from audioenc.config import ModelConfig
    from audioenc.models.codec import CodecModel


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="what computes the frames: torch (default) or onnxruntime (CPU; needs audioenc[onnx])",
    )
    parser.add_argument(
        "--onnx",
        metavar="DIR",
        default=None,
        help="with --backend onnxruntime: the `audioenc export --format onnx` folder of --model "
        "(default: export to a temporary folder first)",
    )


def check_backend_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory flags before the model loads."""
    if args.backend == "torch" and args.onnx is not None:
        raise UserError("--onnx is for --backend onnxruntime; add --backend onnxruntime or drop --onnx.")
    if args.backend == "onnxruntime":
        if args.device != "cpu":
            raise UserError(
                f"--backend onnxruntime runs on the CPU; drop --device {args.device} (or use --backend torch)."
            )
        # imported when the command runs, not at start-up: `audioenc --help` stays fast
        from audioenc.interop.onnx import require_onnx

        require_onnx()


@contextlib.contextmanager
def engine_for(args: argparse.Namespace, model: CodecModel, config: ModelConfig) -> Iterator[object | None]:
    """The inference engine ``args`` ask for: None (PyTorch, the default of encode_file / decode_file)
    or an ONNX Runtime engine (a temporary export is removed on exit)."""
    if args.backend == "torch":
        yield None
        return
    # imported when the command runs, not at start-up: `audioenc --help` stays fast
    from audioenc.interop.onnx_runtime import onnx_engine

    with onnx_engine(model, config, args.onnx) as engine:
        yield engine
