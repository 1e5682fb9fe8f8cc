"""Data: find a dataset (built-in, folder, CSV), decode it once into uint8 tensors, augment batches."""
from .augment import AUGMENTATIONS, build_augment, mix_batch
from .images import BrokenImage, decode_file, open_image
from .preprocess import Preprocess, normalize
from .prepare import PreparedData, TensorSplit, find_data, prepare_data, stratified_split

__all__ = ["AUGMENTATIONS", "BrokenImage", "PreparedData", "Preprocess", "TensorSplit", "build_augment",
           "decode_file", "find_data", "mix_batch", "normalize", "open_image", "prepare_data", "stratified_split"]
