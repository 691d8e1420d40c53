"""The `postfx` command line.

Each subcommand is two functions: `_add_<name>(subparsers)` declares its
arguments and `_cmd_<name>(args) -> int` runs it; add the `_add_` function to
COMMANDS. Commands that need torch import it inside `_cmd_<name>`, through
postfx.train / postfx.exporters, so `postfx info` works without torch.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import PostFXError


def _printable(text: str) -> str:
    # Metadata is text from a file: keep terminal escape sequences out of the output.
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def _section(title: str, value) -> list[str]:
    if not value:
        return []
    if not isinstance(value, dict):
        return ["", f"{title}: {json.dumps(value)}"]
    width = max(len(str(k)) for k in value)
    return ["", f"{title}:"] + [f"  {k:<{width}}  {v if isinstance(v, (str, int, float)) else json.dumps(v)}"
                                for k, v in value.items()]


# --- info ------------------------------------------------------------------------

def _add_info(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a model file: graph, parameters, cost, input contract",
                              description="Validate a model file (or bundled style) and describe it.")
    p.add_argument("model", metavar="FILE_OR_STYLE", help="a .safetensors model file or a bundled style name")
    p.add_argument("--json", action="store_true", help="print the file's metadata as JSON instead")
    p.set_defaults(run=_cmd_info)


def _cmd_info(args) -> int:
    from .model_file import load
    model = load(args.model)
    if args.json:
        print(json.dumps(model.meta, indent=2, sort_keys=True))
        return 0
    lines = [model.describe()]
    lines += _section("training", model.meta.get("training"))
    lines += _section("quality", model.meta.get("quality"))
    print(_printable("\n".join(lines)))
    return 0


# --- the parser ------------------------------------------------------------------

COMMANDS = (_add_info,)


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
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits on --help / --version (0) and on usage errors (2, message
        # already printed); turn that into a return value like every other outcome.
        return e.code if isinstance(e.code, int) else 0
    try:
        return args.run(args)
    except PostFXError as e:
        print(f"postfx: error: {_printable(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
