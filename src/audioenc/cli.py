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
import typing

from audioenc.errors import UserError

COMMANDS = (
    "info",
    "scan",
    "synth",
    "train",
    "eval",
    "report",
    "encode",
    "decode",
    "demo",
    "workflow",
    "export",
    "import-hf",
)
"""Command names; ``import-hf`` lives in ``audioenc.commands.import_hf`` (module names take ``_``)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``audioenc CMD: error: …``) pointing at ``--help``, exit 2,
    like every other refusal of the CLI."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="audioenc",
        description="Train EnCodec-style neural audio encoders and show what they keep of time.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        module_name = f"audioenc.commands.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # command not built yet in this version
        module.register(subparsers)
    return parser


USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
"""What counts as the user's mistake: the project's :class:`~audioenc.errors.UserError` and the
operating system's refusals about a path the user named. Shown as one line, exit 2 (``AUDIOENC_DEBUG=1``
shows the traceback); anything else is a bug and keeps its traceback."""


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``KEY=VALUE`` overrides may come anywhere, also after options (``… x=1 --resume``)."""
    args, extras = parser.parse_known_args(argv)
    overrides = [token for token in extras if "=" in token and not token.startswith("-")]
    unknown = [token for token in extras if token not in overrides]
    if overrides and not hasattr(args, "overrides"):
        unknown = extras
    if unknown:
        parser.parse_args(argv)  # lets argparse word the error (and exit 2) exactly as it does for every command
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if os.environ.get("AUDIOENC_DEBUG"):
            raise
        print(f"audioenc {args.command}: interrupted (Ctrl-C).", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if os.environ.get("AUDIOENC_DEBUG"):
            raise
        print(f"audioenc {args.command}: error: {user_message(error)}", file=sys.stderr)
        return 2


def user_message(error: BaseException) -> str:
    """One line for the user: the error's own message; an OS error with the path it is about."""
    if isinstance(error, OSError) and not isinstance(error, UserError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
