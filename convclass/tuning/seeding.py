"""A seeded sampler that several processes can share one study with.

A sampler seeded once per process makes every process that shares the study draw the same sequence (two
`tune --sampler-seed 1` processes ran trials 0 and 1 with identical settings, then 2 and 3): half the compute
wasted. Instead the sampler is rebuilt for every trial, seeded from (study seed, trial number). Trial numbers
are unique in the shared storage, so processes draw different settings, and trial N of a study draws the same
ones in every repeat, however its trials are split across processes (exactly for random and TPE start-up
trials; TPE's later trials also depend on the results before them, as in any sequential run).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import optuna

__all__ = ["PerTrialSeedSampler", "trial_seed"]


def trial_seed(seed: int, number: int) -> int:
    # SeedSequence hashes the pair: neighbouring numbers get unrelated streams, and (1, 2) differs from (2, 1).
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class PerTrialSeedSampler(optuna.samplers.BaseSampler):
    """Delegates to `make(seed=...)`, built afresh for every trial; the samplers used here keep no state besides
    their random generator (TPE rebuilds its model from the study's trials on every draw)."""

    def __init__(self, make: Callable[..., optuna.samplers.BaseSampler], seed: int):
        self._make, self._seed = make, seed
        self._inner = make(seed=seed)

    def before_trial(self, study, trial) -> None:
        self._inner = self._make(seed=trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
