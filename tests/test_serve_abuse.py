"""Hostile and broken uploads against a real server: each gets a 4xx quickly, nothing lands on disk, it stays up."""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import pytest

from http_client import multipart, png_bytes, post_images, request

QUICK_S = 5.0  # generous for a loaded 2-core machine; a refusal before decoding takes milliseconds


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width x height pixels that compresses to a few tens of KB (a decompression bomb)."""
    row = b"\x00" + bytes((width + 7) // 8)         # filter byte + one bit per pixel, all black
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(height // 1000)]
    data = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello " * 100)
    return buf.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def good_png():
    rng = np.random.default_rng(0)
    return png_bytes(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))


def _attacks(good_png: bytes) -> dict:
    """name -> function(url) returning a Reply."""
    mb50 = b"\x00" * (50 * 1024 * 1024)
    many_body, many_type = multipart([("image", f"{i}.png", b"x") for i in range(10_000)])

    def chunked_no_length(url):
        chunks = (b"\xff" * 65536 for _ in range(200))       # 12.5 MB, never announced
        return request(url, "POST", "/api/predict", chunks, {"Content-Type": "image/png"}, chunked=True)

    return {
        "50 MB body": lambda url: request(url, "POST", "/api/predict", mb50, {"Content-Type": "image/png"}),
        "50 MB multipart": lambda url: post_images(url, [("big.png", mb50)]),
        "chunked body with no length": chunked_no_length,
        "truncated PNG": lambda url: post_images(url, [("t.png", good_png[: len(good_png) // 2])]),
        "zip": lambda url: post_images(url, [("a.zip", _zip())]),
        "SVG": lambda url: post_images(url, [("a.svg", SVG)]),
        "HTML named .jpg": lambda url: post_images(url, [("photo.jpg", HTML)]),
        "20000x20000 PNG": lambda url: post_images(url, [("bomb.png", huge_png())]),
        "empty body": lambda url: request(url, "POST", "/api/predict", b"", {"Content-Type": "image/png"}),
        "empty multipart file": lambda url: post_images(url, [("e.png", b"")]),
        "10,000 multipart parts": lambda url: request(url, "POST", "/api/predict", many_body,
                                                      {"Content-Type": many_type}),
        "../../x.jpg file name": lambda url: post_images(url, [("../../x.jpg", good_png)]),
        "text/plain body": lambda url: request(url, "POST", "/api/predict", b"hello", {"Content-Type": "text/plain"}),
        "bad topk": lambda url: post_images(url, [("a.png", good_png)], "?topk=abc"),
    }


EXPECTED = {"50 MB body": 413, "50 MB multipart": 413, "chunked body with no length": 413, "truncated PNG": 400,
            "zip": 415, "SVG": 415, "HTML named .jpg": 415, "20000x20000 PNG": 413, "empty body": 400,
            "empty multipart file": 400, "10,000 multipart parts": 400, "../../x.jpg file name": 400,
            "text/plain body": 415, "bad topk": 400}


def test_bomb_png_is_small_and_really_that_big():
    data = huge_png()
    assert len(data) < 100_000
    assert struct.unpack(">II", data[16:24]) == (20000, 20000)             # IHDR width, height
    raw = zlib.decompress(data[41:-16])          # the IDAT payload: after IHDR, before its CRC and IEND
    assert len(raw) == 20000 * (1 + 2500)


def test_abuse_gets_quick_4xx_and_server_survives(served, good_png):
    before_cwd = _tree(served.cwd)
    outside = [served.cwd.parent.parent / "x.jpg", served.cwd.parent / "x.jpg", served.cwd / "x.jpg"]
    failures = []
    for name, attack in _attacks(good_png).items():
        r = attack(served.url)
        body = r.json()
        if r.status != EXPECTED[name] or r.seconds > QUICK_S or not body.get("error"):
            failures.append(f"{name}: {r}")
        status, health = served.get("/health", timeout=5)    # still up after each one
        assert status == 200 and health["status"] == "ok", name
    assert not failures, "\n".join(failures)
    # the refusals say what was wrong, in one line
    r = post_images(served.url, [("bomb.png", huge_png())])
    assert "400,000,000 pixels" in r.json()["error"] and "\n" not in r.json()["error"]
    # nothing was written where a client could choose: not in the server's folder, not up the tree
    assert _tree(served.cwd) == before_cwd == []
    assert not any(p.exists() for p in outside)
    assert served.proc.poll() is None
    # and it still does its job
    ok = post_images(served.url, [("fine.png", good_png)])
    assert ok.status == 200 and len(ok.json()["predictions"]) == 1
    _, health = served.get("/health")
    assert health["server_errors"] == 0


def test_slow_body_gets_408():
    """A client that starts a body and stalls is cut off after the body deadline (here 0.2 s, default 30 s)."""
    import asyncio
    import time

    from convclass.serve.body import read_body
    from convclass.serve.limits import RequestError, ServeLimits

    class StallingRequest:
        headers = {"content-length": "1000"}

        def __init__(self):
            self.sent = False

        async def receive(self):
            if not self.sent:
                self.sent = True
                return {"type": "http.request", "body": b"x" * 10, "more_body": True}
            await asyncio.sleep(3600)   # never sends the rest

    t = time.perf_counter()
    with pytest.raises(RequestError) as e:
        asyncio.run(read_body(StallingRequest(), ServeLimits(body_timeout_s=0.2)))
    assert e.value.status == 408 and time.perf_counter() - t < 2
