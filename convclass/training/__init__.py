"""Training: optimizers, schedules, the core (state, hooks, loop), run folders and checkpoints."""
from .core import Hook, TrainState
from .fit import TrainResult, train, train_one_epoch, validate
from .optim import OPTIMIZERS, build_optimizer
from .schedule import SCHEDULES, build_scheduler

__all__ = ["OPTIMIZERS", "SCHEDULES", "Hook", "TrainResult", "TrainState", "build_optimizer", "build_scheduler",
           "train", "train_one_epoch", "validate"]
