"""The `postfx` command line.

Each subcommand is two functions in one of this package's modules:
`add_<name>(subparsers)` declares its arguments and `_cmd_<name>(args) -> int`
runs it (set as the parser's default `run`); add the `add_` function to
COMMANDS. Commands that need torch import it inside `_cmd_<name>`, through
postfx.train / postfx.exporters, so `postfx info` works without torch.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import PostFXError
from .data import add_dataset, add_eval
from .frames import add_bench, add_demo, add_stylize
from .model_info import add_info, add_tune
from .text import printable
from .training import add_export, add_train

COMMANDS = (add_info, add_tune, add_stylize, add_dataset, add_demo, add_eval, add_train, add_export, add_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postfx", description="Neural stylization as a real-time post-processing pass.")
    parser.add_argument("--version", action="version", version=f"postfx {__version__}")
    subparsers = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 usage or postfx error)."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        # A command whose positionals may sit among its options (set_defaults(intermixed=DEST))
        # takes the words argparse left over; anything else left over is an error.
        dest = getattr(args, "intermixed", None)
        if dest and extras and not any(word.startswith("-") for word in extras):
            setattr(args, dest, getattr(args, dest) + extras)
        elif extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as e:
        # argparse exits on --help / --version (0) and on usage errors (2, message
        # already printed); turn that into a return value like every other outcome.
        return e.code if isinstance(e.code, int) else 0
    try:
        return args.run(args)
    except PostFXError as e:
        print(f"postfx: error: {printable(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Every writer leaves its folder or file safe (old state, or refused by its readers).
        print("postfx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `postfx info X | head` closed the pipe: not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # What the file system said about a path the user gave (a name too long, no
        # permission, a file where a folder should be): their input, not our crash.
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"postfx: error: {printable(where + (e.strerror or str(e)))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
