"""Images per second into the training loop at 224 px: the streaming path (data/stream.py: decoded per batch in
DataLoader workers), the decode cache (decode.py: decoded once, then sliced from the memory-mapped uint8 file) and
a plain torchvision ImageFolder DataLoader, on the same images of one folder, with 0, 1 and 2 workers.

    .venv/bin/python bench/data_stream.py --data ~/data/clothing/train --images 384

Every path yields the same uint8 (B, 3, 224, 224) batches of the same images (squash-resized, bilinear), so the
figures compare the loaders alone; no model runs. The cache's cold decode (once per set) is printed beside its
warm rate.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import print_machine  # noqa: E402

SIZE = 224


def _rate(batches, n: int) -> float:
    t0, seen = time.perf_counter(), 0
    for xb in batches:
        seen += len(xb)
    assert seen == n, (seen, n)
    return n / (time.perf_counter() - t0)


def _order(n: int, batch: int, seed: int) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=torch.Generator().manual_seed(seed)).split(batch))


def _imagefolder(root: str, picked: list[int], batch: int, workers: int):
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.PILToTensor()])
    ds = torch.utils.data.Subset(datasets.ImageFolder(root, transform=tf), picked)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    return (xb for xb, _ in loader)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="~/data/clothing/train", help="a folder of class sub-folders")
    ap.add_argument("--images", type=int, default=384, help="images per pass (a seeded sample of the folder)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="0,1,2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print_machine()
    from torchvision import datasets
    from convclass.data.decode import decode_set
    from convclass.data.sources import LabeledSet
    from convclass.data.loader import batch_stream
    from convclass.data.stream import StreamImages, train_batches

    root = str(Path(args.data).expanduser())
    files = [p for p, _ in datasets.ImageFolder(root).samples]  # ImageFolder's own order, so both see the same files
    picked = sorted(np.random.default_rng(0).permutation(len(files))[:args.images].tolist())
    paths = [files[i] for i in picked]
    n, order = len(paths), _order(len(paths), args.batch_size, 0)
    print(f"{n} images of {root} at {SIZE}x{SIZE}, batch {args.batch_size}, one torch thread per process")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        d = decode_set(LabeledSet(labels=np.zeros(n, np.int64), paths=paths), SIZE, 3, Path(tmp), workers=1,
                       progress=False)
        cold = n / (time.perf_counter() - t0)
        x = torch.from_numpy(d.images)
        rows = []
        for w in [int(v) for v in args.workers.split(",")]:
            stream = _rate(train_batches(StreamImages(paths, SIZE, 3), order, None, 0, 0, w, None), n)
            cache = _rate(batch_stream(x, order, None, 0, w), n)  # slices of the mapped file: no worker helps
            folder = _rate(_imagefolder(root, picked, args.batch_size, w), n)
            rows.append((w, stream, cache, folder))
            print(f"  workers {w}: measured", flush=True)
    print(f"\n{'workers':>7}  {'stream img/s':>12}  {'cache img/s':>11}  {'ImageFolder img/s':>17}")
    for w, s, c, f in rows:
        print(f"{w:>7}  {s:>12.1f}  {c:>11.0f}  {f:>17.1f}")
    print(f"cache, cold decode once (1 process): {cold:.1f} img/s")


if __name__ == "__main__":
    main()
