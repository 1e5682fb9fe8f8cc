"""Reading files that come from outside (data folders, config files) without hanging or reading forever.

Only regular files are read, and at most a bounded number of bytes: a FIFO would block until a writer came,
/dev/zero or a socket never ends, and a huge file would exhaust memory."""
from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["Refused", "max_file_bytes", "open_regular", "read_regular", "spreadsheet_safe", "MAX_FILE_MB_ENV"]

MAX_FILE_MB_ENV = "CONVCLASS_MAX_FILE_MB"
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class Refused(Exception):
    """The file was not read; the message is a short reason (not a regular file, too large, unreadable)."""


def max_file_bytes() -> int:
    """The most bytes one data file may hold: 256 MB (no training image comes near), or $CONVCLASS_MAX_FILE_MB."""
    try:
        mb = float(os.environ.get(MAX_FILE_MB_ENV, 256))
    except ValueError:
        mb = 256.0
    return int(max(mb, 0.001) * 2**20)


def _not_regular(st: os.stat_result) -> str | None:
    if stat.S_ISREG(st.st_mode):
        return None
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
    return f"not a regular file ({kind})"


def _too_big(limit: int, env: bool) -> str:
    return f"larger than the {limit / 2**20:.3g} MB limit" + (f" per file (${MAX_FILE_MB_ENV} raises it)" if env else "")


def open_regular(path: str | Path, limit: int | None = None):
    """A binary file object for `path` if it (after symlinks) is a regular file of at most `limit` bytes
    (default max_file_bytes()); Refused otherwise.

    Checked before opening (a device is never opened) and again on the open descriptor, opened with O_NONBLOCK:
    a file swapped for a FIFO in between can neither hang the open nor slip through."""
    return _open(path, max_file_bytes() if limit is None else limit, limit is None)


def _open(path: str | Path, limit: int, env: bool):
    try:
        reason = _not_regular(os.stat(path))
        if reason:
            raise Refused(reason)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise Refused(f"unreadable ({e.strerror or e})") from None
    f = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    reason = _not_regular(st) or (_too_big(limit, env) if st.st_size > limit else None)
    if reason:
        f.close()
        raise Refused(reason)
    return f


def read_regular(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see open_regular), read in bounded pieces: a file
    that grows past the limit while being read is refused too."""
    env, limit = limit is None, max_file_bytes() if limit is None else limit
    parts, total = [], 0
    with _open(path, limit, env) as f:
        piece = min(os.fstat(f.fileno()).st_size + 1, limit + 1)  # +1: a file that grew shows it at once
        try:
            while data := f.read(piece):
                parts.append(data)
                total += len(data)
                if total > limit:
                    raise Refused(_too_big(limit, env))
                piece = min(2**20, limit + 1 - total)
        except OSError as e:
            raise Refused(f"unreadable ({e.strerror or e})") from None
    return b"".join(parts)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what Excel, LibreOffice and Google Sheets read as a formula


def spreadsheet_safe(cell) -> str:
    """A CSV cell from outside (a file path, a class name) that a spreadsheet shows as text instead of running:
    one starting with = + - @ tab or CR (`=HYPERLINK(...)`, `=cmd|...`) gets a leading single quote, OWASP's
    advice against CSV injection. Only for report CSVs people open; never for CSVs convclass reads back."""
    text = str(cell)
    return "'" + text if text.startswith(FORMULA_START) else text
