"""`audioenc …`: one sub-command per module in `audioenc.commands`.

Each command module defines ``register(subparsers)`` that adds its parser and sets
``func`` to a callable ``run(args) -> int``. Heavy imports stay inside ``run`` so that
``audioenc --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("info", "scan", "synth", "train", "eval", "encode", "decode", "demo", "workflow")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioenc",
        description="Train EnCodec-style neural audio encoders and show what they keep of time.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"audioenc.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"audioenc.commands.{name}":
                raise
            continue  # command not built yet in this version
        module.register(subparsers)
    return parser


USER_ERRORS = (KeyError, ValueError, FileExistsError, FileNotFoundError)
"""Errors whose message tells the user what to fix; shown without a traceback (AUDIOENC_DEBUG=1 shows it)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if os.environ.get("AUDIOENC_DEBUG"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"audioenc {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
