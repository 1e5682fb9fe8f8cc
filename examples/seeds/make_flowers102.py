"""Put Flowers-102 in class folders with its official split, as symlinks (no image is copied).

The Oxford 102-category flower set (Nilsback and Zisserman) ships as a flat folder of `image_00001.jpg` ...
`image_08189.jpg` and two MATLAB files: `imagelabels.mat` (the category 1..102 of each image) and `setid.mat`
(the official split: 1,020 training, 1,020 validation and 6,149 test images). This builds

    OUT/train/<category>/image_NNNNN.jpg -> IMAGES/image_NNNNN.jpg      (trnid)
    OUT/val/<category>/...                                             (valid)
    OUT/test/<category>/...                                            (tstid)
    OUT/class_names.json                                               (category names, when --names is given)
    OUT/flowers102.json                                                (counts, and the images IMAGES lacks)

from the official files or from any copy of the image folder, e.g. the 64x64 copy docs/datasets.md names:

    python examples/seeds/make_flowers102.py IMAGES imagelabels.mat setid.mat ~/data/flowers102-64 \\
        --names cat_to_name.json

The two .mat files are checked against the md5 sums torchvision's Flowers102 checks, so a wrong or edited label
file is refused; images missing from the copy are skipped and listed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path

OFFICIAL_MD5 = {"imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
                "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c"}
SPLITS = {"train": "trnid", "val": "valid", "test": "tstid"}
MAX_SMALL_FILE = 2**20     # the .mat files are 502 and 14,989 bytes, cat_to_name.json 3 KB
REPO = Path(__file__).resolve().parents[2]


class Refused(Exception):
    """A one-line reason the folder cannot be built."""


def read_small(path: Path) -> bytes:
    """The bytes of a small regular file (convclass.safeio: a FIFO, a device or a huge file is refused)."""
    from convclass.safeio import Refused as Unsafe, read_regular
    try:
        return read_regular(path, MAX_SMALL_FILE)
    except Unsafe as e:
        raise Refused(f"{path}: {e}") from None


def read_mat(path: Path, expected_md5: str) -> dict:
    """The MATLAB file's arrays, once its bytes match the official md5 (read once: checked bytes are parsed)."""
    from scipy.io import loadmat   # MATLAB v5 data only: loadmat runs no code from the file
    data = read_small(path)
    digest = hashlib.md5(data).hexdigest()
    if digest != expected_md5:
        raise Refused(f"{path} has md5 {digest}, not the official {expected_md5}; use the file that comes "
                      "with Flowers-102")
    return loadmat(io.BytesIO(data))


def read_names(path: Path) -> dict[str, str]:
    """Category number -> name for 1..102, from a JSON object (cat_to_name.json)."""
    try:
        table = json.loads(read_small(path))
        return {str(k): str(table[str(k)]) for k in range(1, 103)}
    except (ValueError, TypeError, KeyError) as e:
        raise Refused(f"{path}: not a JSON object naming categories 1..102 ({type(e).__name__}: {e})") from None


def plan(images: Path, labels_mat: Path, setid_mat: Path) -> tuple[dict[str, list[tuple[int, int]]], list[int]]:
    """{split: [(image id, category)]} and the ids whose image is not in `images`."""
    labels = read_mat(labels_mat, OFFICIAL_MD5["imagelabels.mat"])["labels"].ravel()
    ids = read_mat(setid_mat, OFFICIAL_MD5["setid.mat"])
    out, missing = {}, []
    for split, key in SPLITS.items():
        out[split] = []
        for i in sorted(int(v) for v in ids[key].ravel()):
            if (images / f"image_{i:05d}.jpg").is_file():
                out[split].append((i, int(labels[i - 1])))
            else:
                missing.append(i)
    return out, sorted(missing)


def build(images: Path, labels_mat: Path, setid_mat: Path, out: Path, names: Path | None) -> dict:
    if not images.is_dir():
        raise Refused(f"{images} is not a folder of image_NNNNN.jpg files")
    if out.resolve().is_relative_to(REPO):
        raise Refused(f"{out} is inside the repository; data never goes there (use e.g. ~/data/flowers102-64)")
    if out.exists() and any(out.iterdir()):
        raise Refused(f"{out} exists and is not empty; give a new folder")
    src = images.resolve()
    splits, missing = plan(src, labels_mat, setid_mat)
    table = read_names(names) if names is not None else None   # every input read before anything is written
    for split, items in splits.items():
        for i, category in items:
            link = out / split / str(category) / f"image_{i:05d}.jpg"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src / link.name, link)
    if table is not None:
        (out / "class_names.json").write_text(json.dumps(table, indent=1))
    info = {"source": str(src), "counts": {s: len(v) for s, v in splits.items()},
            "classes": {s: len({c for _, c in v}) for s, v in splits.items()}, "missing": missing}
    (out / "flowers102.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=Path, help="folder of image_NNNNN.jpg (102flowers.tgz's jpg/ or a copy)")
    ap.add_argument("labels", type=Path, help="imagelabels.mat")
    ap.add_argument("setid", type=Path, help="setid.mat")
    ap.add_argument("out", type=Path, help="new folder to build")
    ap.add_argument("--names", type=Path, help="JSON of category number -> name (the Udacity cat_to_name.json)")
    args = ap.parse_args(argv)
    try:
        info = build(args.images, args.labels, args.setid, args.out, args.names)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in info.items() if k != "missing"}), f"missing images: {len(info['missing'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
