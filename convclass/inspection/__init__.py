"""Data inspection: class counts, sizes, modes, broken files, exact and near duplicates (train/test leakage)."""
from .audit import format_inspection, inspect_data
from .hashing import dhash, hamming, phash
from .summary import data_summary, format_data_summary, imbalance_ratio

__all__ = ["data_summary", "dhash", "format_data_summary", "format_inspection", "hamming", "imbalance_ratio",
           "inspect_data", "phash"]
