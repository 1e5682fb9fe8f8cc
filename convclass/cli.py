"""The `convclass` command: a parser assembled from commands/<name>.py, each calling one library function."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .errors import ConvclassError, Interrupted, printable

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """Usage mistakes (an unknown flag, a missing value) as one `error:` line, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    from .commands import COMMANDS
    p = _Parser(prog="convclass", description="Image classification with convolutional networks.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"convclass.commands.{name.replace('-', '_')}").add_parser(sub)
    return p


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {printable(message)}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warnings
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as typed: `train --nproc` hands the same flags to its workers
    try:
        return args.fn(args)
    except ConvclassError as e:
        print(f"error: {printable(e)}", file=sys.stderr)  # one line, whatever a file name in it holds
        return 2
    except BrokenPipeError:  # `convclass models | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:
        more = f"; continue with: {printable(e.resume)}" if isinstance(e, Interrupted) else ""
        print(f"interrupted{more}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
