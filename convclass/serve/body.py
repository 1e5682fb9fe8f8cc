"""Reading request bodies under a size cap and a deadline, and pulling the images out of them.

The cap is enforced on the bytes as they arrive, so a chunked body with no Content-Length is refused as soon as
it passes the limit, and nothing larger than the cap is ever held in memory. Bodies are parsed in memory; no
upload is written to disk under its client-supplied name (Starlette spools parts over 1 MB to anonymous temp
files, which the body cap keeps small).
"""
from __future__ import annotations

import asyncio
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from .limits import RequestError, ServeLimits

__all__ = ["read_body", "extract_images", "safe_name"]


async def read_body(request: Request, limits: ServeLimits) -> bytes:
    """The body as bytes; RequestError 413 over the cap, 408 when it does not arrive in time."""
    loop = asyncio.get_running_loop()
    declared = request.headers.get("content-length")
    if declared is not None and not declared.strip().isdigit():
        raise RequestError(400, "invalid Content-Length header")
    buf = bytearray()
    received = 0
    deadline = loop.time() + limits.body_timeout_s
    drain_until = None
    while True:
        remaining = (drain_until or deadline) - loop.time()
        if remaining <= 0:
            if drain_until is not None:
                break
            raise RequestError(408, f"the request body did not arrive within {limits.body_timeout_s:.0f} s")
        try:
            msg = await asyncio.wait_for(request.receive(), timeout=remaining)
        except asyncio.TimeoutError:
            continue  # loop once more: the deadline check above decides between 408 and end of draining
        if msg["type"] == "http.disconnect":
            raise RequestError(400, "the client closed the connection before sending the whole body")
        chunk = msg.get("body", b"")
        received += len(chunk)
        if drain_until is None:
            if received > limits.max_upload_bytes:
                # Too big: keep reading and discarding for a moment so the client, still sending, gets the 413
                # rather than a connection reset; then answer either way.
                buf = bytearray()
                drain_until = loop.time() + limits.drain_s
            else:
                buf += chunk
        if not msg.get("more_body", False):
            break
    if drain_until is not None:
        mb = limits.max_upload_bytes / (1024 * 1024)
        raise RequestError(413, f"request body over the {mb:g} MB limit; send smaller or fewer images")
    return bytes(buf)


def safe_name(name: str | None, index: int) -> str:
    """The upload's name for display, refused (400) when it carries folders or control characters.

    Browsers and curl send a bare name; `../../x.jpg` or `C:\\dir\\x.jpg` means a confused or hostile client.
    The name is only ever echoed back in JSON, never used as a path, but refusing it keeps logs and clients honest.
    """
    name = name or ""
    if "/" in name or "\\" in name or name in (".", "..") or not all(ch.isprintable() for ch in name):
        shown = "".join(ch if ch.isprintable() else "?" for ch in name)[:60]
        raise RequestError(400, f"file name {shown!r} has folders or control characters; send a plain file "
                                "name such as photo.jpg")
    return name[:100] or f"image-{index + 1}"


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


async def extract_images(request: Request, body: bytes, limits: ServeLimits) -> list[tuple[str, bytes]]:
    """(display name, bytes) for each image: the file parts of a multipart body, or a raw image body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await Request(request.scope, _replay(body)).form(max_files=limits.max_files,
                                                                   max_fields=limits.max_fields)
        except (MultiPartException, HTTPException) as e:  # Starlette turns the first into the second in apps
            why = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
            raise RequestError(400, f"bad multipart body: {why} (at most {limits.max_files} images per request)")
        try:
            files = [(safe_name(v.filename, i), await v.read())
                     for i, (_, v) in enumerate(form.multi_items()) if isinstance(v, UploadFile)]
        finally:
            await form.close()
    elif ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
        files = [("image-1", body)] if body else []
    else:
        raise RequestError(415, f"unsupported Content-Type {ctype!r}; send multipart/form-data with image files "
                                "(field name 'image') or a raw image body")
    if not files:
        raise RequestError(400, "no image in the request; send multipart/form-data with a file field 'image'")
    return files
