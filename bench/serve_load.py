"""Load test for `convclass serve`: N requests from C concurrent clients against a real server process.

Each client keeps one HTTP/1.1 connection and posts one 32x32 PNG per request (multipart, as the page does).
Prints errors (any non-200 or exception; must be 0), requests/s, p50/p99 latency, how the server batched, and
the server's resident memory after warm-up and after the load (must stay within 20 %).

    python bench/serve_load.py                      # trains a small CNN (cnn3) on synthetic 32x32 images first
    python bench/serve_load.py --model runs/NAME --requests 2000 --clients 8
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402


def small_run(base: Path, arch: str = "cnn3") -> Path:
    """`arch` trained for one epoch on 3 classes x 40 synthetic 32x32 PNGs (10-30 s on 2 cores)."""
    import numpy as np
    from PIL import Image

    from convclass import train
    rng = np.random.default_rng(0)
    for ci, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        d = base / "data" / f"class{ci}"
        d.mkdir(parents=True)
        for i in range(40):
            a = np.clip(np.asarray(colour) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{i}.png")
    res = train(data=str(base / "data"), model=arch, img_size=32, epochs=1, batch_size=32, device="cpu",
                runs_dir=str(base / "runs"), data_root=str(base / "cache"), quiet=True, name="load")
    return res.run_dir


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bodies(n: int = 32) -> list[tuple[bytes, str]]:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
        b = uuid.uuid4().hex
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{b}--\r\n".encode()
        out.append((body, f"multipart/form-data; boundary={b}"))
    return out


def client(port: int, count: int, payloads, latencies: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(count):
        body, ctype = payloads[i % len(payloads)]
        t = time.perf_counter()
        try:
            conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or not json.loads(data)["predictions"]:
                errors.append(f"HTTP {r.status}: {data[:120]!r}")
        except Exception as e:  # count and carry on with a fresh connection
            errors.append(f"{type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies.append(time.perf_counter() - t)
    conn.close()


def run_load(port: int, requests: int, clients: int, payloads) -> tuple[list, list, float]:
    latencies, errors = [], []
    per = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=client, args=(port, n, payloads, latencies, errors)) for n in per]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return latencies, errors, time.perf_counter() - t


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="run folder or export to serve (default: train --arch first)")
    ap.add_argument("--arch", default="cnn3", help="model to train when --model is not given")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=200, help="requests before the memory baseline")
    ap.add_argument("--max-batch", type=int, default=64, help="server's --max-batch (1 turns batching off)")
    ap.add_argument("--threads", type=int, help="server's --threads (model CPU threads)")
    args = ap.parse_args()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="convclass-load-") as tmp:
        base = Path(tmp)
        model = Path(args.model) if args.model else small_run(base, args.arch)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "convclass", "serve", str(model), "--port", str(port),
                                   "--max-batch", str(args.max_batch),
                                   *(["--threads", str(args.threads)] if args.threads else [])],
                                  cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    get_json(port, "/health")
                    break
                except OSError:
                    if server.poll() is not None or time.time() > deadline:
                        print(server.stdout.read())
                        raise SystemExit("server did not start")
                    time.sleep(0.3)
            info = get_json(port, "/api/model")
            print(f"server: {info['name']} ({info['arch']}, {info['runtime']}, input {info['channels']}x"
                  f"{info['img_size']}x{info['img_size']}), pid {server.pid}")
            payloads = bodies()
            rss_start = rss_mb(server.pid)
            _, warm_err, _ = run_load(port, args.warmup, args.clients, payloads)
            rss_before = rss_mb(server.pid)
            h0 = get_json(port, "/health")
            lat, errors, secs = run_load(port, args.requests, args.clients, payloads)
            rss_after = rss_mb(server.pid)
            h1 = get_json(port, "/health")
        finally:
            server.terminate()
            server.wait(timeout=20)
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    batches = h1["batches"] - h0["batches"]
    images = h1["images"] - h0["images"]
    growth = (rss_after - rss_before) / rss_before
    print(f"load: {args.requests} requests from {args.clients} concurrent clients, server --max-batch "
          f"{args.max_batch} (after {args.warmup} warm-up, "
          f"{len(warm_err)} warm-up errors)")
    print(f"  errors        {len(errors)}" + (f"  first: {errors[0]}" if errors else ""))
    print(f"  throughput    {args.requests / secs:.1f} requests/s ({secs:.1f} s)")
    print(f"  latency       p50 {q[49] * 1000:.1f} ms   p99 {q[98] * 1000:.1f} ms   max {lat[-1] * 1000:.1f} ms")
    print(f"  batching      {images} images in {batches} model calls (mean batch {images / max(1, batches):.2f}, "
          f"largest so far {h1['largest_batch']})")
    print(f"  server RSS    {rss_start:.0f} MB at start, {rss_before:.0f} MB after warm-up, {rss_after:.0f} MB after "
          f"the load ({growth * 100:+.1f} %, limit 20 %)")
    ok = not errors and abs(growth) <= 0.20
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
