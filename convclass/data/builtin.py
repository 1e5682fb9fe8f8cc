"""Built-in datasets by name: scikit-learn's digits (offline), torchvision's classics, Debian's Fashion-MNIST."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import ConvclassError
from .sources import DataSpec, LabeledSet

__all__ = ["BUILTIN", "load_builtin"]

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
# What the offline user must place where, per dataset (torchvision's own file names).
OFFLINE_FILES = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "
                     "(or `apt-get install dataset-fashion-mnist`)",
    "cifar10": "cifar-10-python.tar.gz",
    "cifar100": "cifar-100-python.tar.gz",
    "flowers102": "flowers-102/{102flowers.tgz,imagelabels.mat,setid.mat}",
}


def _digits(root: Path) -> DataSpec:
    from sklearn.datasets import load_digits
    d = load_digits()
    # 0..16 intensities -> 0..255, (N, 8, 8, 1)
    arrays = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    return DataSpec(name="digits", classes=[str(c) for c in d.target_names],
                    train=LabeledSet(labels=d.target.astype(np.int64), arrays=arrays))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_split(folder: Path, prefix: str) -> LabeledSet | None:
    for ext in (".gz", ""):
        img, lab = folder / f"{prefix}-images-idx3-ubyte{ext}", folder / f"{prefix}-labels-idx1-ubyte{ext}"
        if img.exists() and lab.exists():
            return LabeledSet(labels=_read_idx(lab).astype(np.int64), arrays=_read_idx(img)[..., None].copy())
    return None


def _torchvision(name: str, root: Path) -> DataSpec:
    import torchvision.datasets as tvd
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10,
           "cifar100": tvd.CIFAR100}[name]
    root.mkdir(parents=True, exist_ok=True)
    try:
        tr = cls(str(root), train=True, download=True)
        te = cls(str(root), train=False, download=True)
    except Exception as e:  # offline: URLError, RuntimeError, ... all mean the same to the user
        raise ConvclassError(
            f"could not get {name} ({type(e).__name__}: {str(e)[:80]}); offline, place "
            f"{OFFLINE_FILES[name]} under {root}/ or pass a folder with --data") from None

    def to_set(ds) -> LabeledSet:
        data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
        if data.ndim == 3:
            data = data[..., None]
        return LabeledSet(labels=np.asarray(ds.targets, dtype=np.int64), arrays=np.ascontiguousarray(data))

    return DataSpec(name=name, classes=list(tr.classes), train=to_set(tr), test=to_set(te))


def _fashion(root: Path) -> DataSpec:
    for folder in (DEBIAN_FASHION, root / "FashionMNIST" / "raw"):
        tr, te = _idx_split(folder, "train"), _idx_split(folder, "t10k")
        if tr is not None and te is not None:
            return DataSpec(name="fashion-mnist", classes=FASHION_CLASSES, train=tr, test=te)
    return _torchvision("fashion-mnist", root)


def _flowers(root: Path) -> DataSpec:
    import torchvision.datasets as tvd
    root.mkdir(parents=True, exist_ok=True)
    try:
        splits = {s: tvd.Flowers102(str(root), split=s, download=True) for s in ("train", "val", "test")}
    except Exception as e:
        raise ConvclassError(
            f"could not get flowers102 ({type(e).__name__}); offline, place {OFFLINE_FILES['flowers102']} "
            f"under {root}/") from None

    def to_set(ds) -> LabeledSet:
        return LabeledSet(labels=np.asarray(ds._labels, dtype=np.int64), paths=[str(p) for p in ds._image_files])

    return DataSpec(name="flowers102", classes=[str(i) for i in range(102)], train=to_set(splits["train"]),
                    val=to_set(splits["val"]), test=to_set(splits["test"]))


def _tiny(root: Path) -> DataSpec:
    from .folder import scan_folder
    for cand in (root / "tiny-imagenet-200", root / "tiny-imagenet"):
        if (cand / "wnids.txt").exists():
            return scan_folder(cand)
    raise ConvclassError(
        f"tiny-imagenet not found; unpack tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip) "
        f"into {root}/ or pass its folder with --data")


BUILTIN = {
    "digits": _digits,
    "mnist": lambda root: _torchvision("mnist", root),
    "fashion-mnist": _fashion,
    "cifar10": lambda root: _torchvision("cifar10", root),
    "cifar100": lambda root: _torchvision("cifar100", root),
    "flowers102": _flowers,
    "tiny-imagenet": _tiny,
}


def load_builtin(name: str, data_root: str | Path) -> DataSpec:
    key = name.lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100", "tinyimagenet": "tiny-imagenet", "flowers": "flowers102"}.get(key, key)
    return BUILTIN[key](Path(data_root).expanduser() / key)
