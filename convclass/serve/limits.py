"""The server's safety limits in one place, with their units; the ones users tune have a flag on `convclass serve`."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeLimits", "RequestError"]


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 10 * 1024 * 1024  # whole request body, declared or chunked; 413 above
    max_pixels: int = 25_000_000             # width x height read from the header, before decoding; 413 above
    max_files: int = 32                      # image parts in one multipart request; 400 above
    max_fields: int = 8                      # non-file multipart fields; 400 above
    max_batch: int = 64                      # images per model call when requests are batched together
    max_gradcam: int = 4                     # Grad-CAM overlays per request (each costs a backward pass)
    body_timeout_s: float = 30.0             # whole body must arrive within this; 408 after (slow clients)
    drain_s: float = 2.0                     # after 413, read and discard the rest this long so the client
                                             # sees the answer instead of a reset connection
    max_connections: int = 64                # open sockets in all (bounds memory: x body cap); over it the
                                             # longest-idle socket is closed, or 503 when none is idle
    max_connections_per_client: int = 32     # the same, per client address (a proxy in front is one client):
                                             # one client cannot take them all
    header_timeout_s: float = 5.0            # a request's headers must arrive within this from connect or the
                                             # previous answer; idle and byte-a-second sockets are closed after


class RequestError(Exception):
    """A client mistake: HTTP status and a one-line message that says what to send instead."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
