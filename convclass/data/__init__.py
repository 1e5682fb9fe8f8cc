"""Data: find a dataset (built-in, folder, CSV), decode it once into uint8 tensors, augment batches."""
from .augment import AUGMENTATIONS, Augmentation, build_augment, mix_batch
from .images import BrokenImage, decode_file, open_image
from .loader import batch_stream
from .preprocess import Preprocess, normalize
from .prepare import PreparedData, TensorSplit, find_data, prepare_data, stratified_split

__all__ = ["AUGMENTATIONS", "Augmentation", "BrokenImage", "PreparedData", "Preprocess", "TensorSplit",
           "batch_stream", "build_augment", "decode_file", "find_data", "mix_batch", "normalize", "open_image",
           "prepare_data", "stratified_split"]
