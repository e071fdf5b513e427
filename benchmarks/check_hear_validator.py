"""Does the HEAR 2021 submission validator pass audioenc's HEAR modules? Run it and see.

``hearvalidator`` 2021.0.2 is the HEAR 2021 competition's checker (``hear-validator MODULE --model
PATH``). This script runs its command line on both HEAR modules of this package:

* ``audioenc.hear`` on a codec (``--codec``: a ``model_best.safetensors``, ``checkpoint_*.pt`` or
  run folder from ``audioenc train``; default a tiny seeded, untrained codec made here), and
* ``audioenc.timing.weak_hear`` on a weak-label CRNN folder (``--crnn``; default a tiny seeded
  CRNN made here),

and prints, for each, what the validator saw (sample rate, embedding and timestamp shapes, the
timestamp interval) and its verdict; the exit status is 0 when both pass.

The validator declares ``tensorflow>=2.0`` as a requirement and imports it, but uses it on a
PyTorch model only for ``isinstance(model, tf.Module)``. So it is installed with ``pip install
--no-deps hearvalidator==2021.0.2`` (``--install`` does that, from the package index), and when no
TensorFlow is installed its process gets ``tests/hear_stub`` on ``PYTHONPATH``: a ``tensorflow``
stand-in that defines only ``Module`` (see ``tests/hear_stub/tensorflow/__init__.py``). With a real
TensorFlow installed, that is used instead. ``tests/test_hear_validator.py`` runs the same checks.

Usage::

    python benchmarks/check_hear_validator.py [--install] [--codec PATH] [--crnn FOLDER] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "tests" / "hear_stub"
VALIDATOR = "hearvalidator==2021.0.2"


def _tiny_codec(directory: Path) -> str:
    import torch

    from audioenc.config import ModelConfig
    from audioenc.models.codec import CodecModel
    from audioenc.models.files import export_model

    torch.manual_seed(0)
    config = ModelConfig(n_filters=4, dimension=16, lstm=1, channels=1, quantizer="none", q_dropout=False)
    export_model(directory, "model_best", CodecModel.from_config(config).eval(), config)
    return str(directory / "model_best.safetensors")


def _tiny_crnn(directory: Path) -> str:
    import torch

    from audioenc.timing.weak import CRNNConfig, WeakCRNN, save_weak_encoder

    torch.manual_seed(0)
    crnn = WeakCRNN(("dog", "bell"), "linear_softmax", CRNNConfig(stem_channels=4, conv_channels=(8, 8), rnn_hidden=6))
    return str(save_weak_encoder(crnn.eval(), directory / "weak"))


def run_validator(module: str, model_path: str, device: str) -> tuple[bool, str, float]:
    """``hear-validator MODULE --model PATH --device DEVICE`` in a new interpreter:
    (passed, its output, seconds)."""
    paths = [str(REPO / "src")]
    if importlib.util.find_spec("tensorflow") is None:
        paths.append(str(STUB))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "hearvalidator.validate", module, "--model", model_path, "--device", device]
    start = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=environment)
    passed = result.returncode == 0 and result.stdout.rstrip().endswith("Looks good!")
    return passed, result.stdout + result.stderr, time.perf_counter() - start


def _summary(output: str) -> list[str]:
    keep = re.compile(r"Model sample rate|embedding_size|Passing in audio|Received (embedding|timestamps)|Interval")
    return [line.strip() for line in output.splitlines() if keep.search(line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help=f"pip install --no-deps {VALIDATOR} if it is missing")
    parser.add_argument("--codec", help="codec export / checkpoint / run folder (default: a tiny one made here)")
    parser.add_argument("--crnn", help="weak-CRNN folder (default: a tiny one made here)")
    parser.add_argument("--device", default="cpu", help="the validator's --device (default cpu)")
    args = parser.parse_args()
    if importlib.util.find_spec("hearvalidator") is None:
        if not args.install:
            print(
                f"hearvalidator is not installed: pip install --no-deps {VALIDATOR} (or pass --install)",
                file=sys.stderr,
            )
            return 2
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", VALIDATOR], check=True)
    print(f"TensorFlow: {'installed' if importlib.util.find_spec('tensorflow') else 'absent; stand-in ' + str(STUB)}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checks = [
            ("audioenc.hear", args.codec or _tiny_codec(scratch)),
            ("audioenc.timing.weak_hear", args.crnn or _tiny_crnn(scratch)),
        ]
        failed = 0
        for module, model_path in checks:
            passed, output, seconds = run_validator(module, model_path, args.device)
            failed += not passed
            print(
                f"\nhear-validator {module} --model {model_path} --device {args.device}: "
                f"{'PASS' if passed else 'FAIL'} ({seconds:.1f} s)"
            )
            for line in _summary(output) if passed else output.splitlines()[-25:]:
                print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
