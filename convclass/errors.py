"""User-facing errors: the CLI prints these as one line and exits non-zero, with no traceback."""

__all__ = ["ConvclassError"]


class ConvclassError(Exception):
    """A problem the user can fix; the message says what to do."""
