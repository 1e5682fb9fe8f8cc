"""Data inspection: class counts, sizes, modes, broken files, exact and near duplicates (train/test leakage)."""
from .audit import format_inspection, inspect_data
from .hashing import dhash, hamming, phash

__all__ = ["dhash", "format_inspection", "hamming", "inspect_data", "phash"]
