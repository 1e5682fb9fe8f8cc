"""User-facing errors: the CLI prints these as one line and exits non-zero, with no traceback."""

__all__ = ["ConvclassError", "Interrupted", "printable"]


class ConvclassError(Exception):
    """A problem the user can fix; the message says what to do."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C once there is something to continue from: `resume` is the command that continues it (the CLI
    prints it after "interrupted")."""

    def __init__(self, resume: str, folder: str | None = None):
        super().__init__(resume)
        self.resume, self.folder = resume, folder  # folder: what the command continues


def printable(text) -> str:
    """`text` safe to print on a terminal: newlines, ANSI escape sequences and other control characters (which
    file and folder names may hold) shown escaped (\\n, \\x1b), so a name can neither fake lines nor recolour or
    move the cursor."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
