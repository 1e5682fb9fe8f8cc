"""Training: optimizers, schedules, the epoch loop, run folders and checkpoints."""
from .fit import TrainResult, train, train_one_epoch, validate
from .optim import OPTIMIZERS, build_optimizer
from .schedule import SCHEDULES, build_scheduler

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainResult", "build_optimizer", "build_scheduler", "train",
           "train_one_epoch", "validate"]
