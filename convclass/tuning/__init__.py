"""Finding good settings: the learning-rate range test and Optuna sweeps stored in a database."""
from .lr_finder import LRFindResult, lr_find, lr_range_test, resolve_auto_lr
from .space import Param, default_space, parse_param_flag, parse_space_file
from .sweep import TuneResult, tune

__all__ = ["LRFindResult", "Param", "TuneResult", "default_space", "lr_find", "lr_range_test",
           "parse_param_flag", "parse_space_file", "resolve_auto_lr", "tune"]
