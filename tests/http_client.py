"""A plain HTTP client for the server tests (stdlib only): multipart bodies, chunked bodies, raw requests."""
from __future__ import annotations

import http.client
import io
import json
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
from PIL import Image


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def multipart(files: list[tuple[str, str, bytes]], ctype: str = "application/octet-stream"
              ) -> tuple[bytes, str]:
    """[(field, filename, data)] -> (body, Content-Type header)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for field, name, data in files:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict, seconds: float):
        self.status, self.body, self.headers, self.seconds = status, body, headers, seconds

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} in {self.seconds:.2f}s: {self.body[:300]!r}"


def request(url: str, method: str, path: str, body=None, headers: dict | None = None, chunked: bool = False,
            timeout: float = 30) -> Reply:
    """One request on a fresh connection; `body` may be bytes or an iterable of chunks (with chunked=True)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    t = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, data, {k.lower(): v for k, v in r.getheaders()}, time.perf_counter() - t)
    finally:
        conn.close()


def post_images(url: str, images: list[tuple[str, bytes]], query: str = "", timeout: float = 30) -> Reply:
    body, ctype = multipart([("image", name, data) for name, data in images])
    return request(url, "POST", "/api/predict" + query, body, {"Content-Type": ctype}, timeout=timeout)
