"""runtime.release_free_memory: the pages tune_cpu_allocator keeps are handed back when a run's working set
changes shape (epoch.py: a new progressive size, the backbone unfreezing)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from convclass.data.augment import RandomResizedCropFlip
from convclass.training import epoch


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_heap_pages_go_back_to_the_os():
    code = """
import psutil, torch
from convclass.runtime import release_free_memory, tune_cpu_allocator
assert tune_cpu_allocator()
rss = lambda: psutil.Process().memory_info().rss / 2**20
base = rss()
x = torch.ones(300 * 2**20 // 4); del x
kept = rss()
assert release_free_memory()
print('MB', round(kept - base), round(rss() - base))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    kept, after = map(int, out.stdout.split()[1:3]) if out.stdout.startswith("MB") else (None, None)
    assert kept is not None, out.stdout + out.stderr
    assert kept > 250 and after < 50  # kept by the tuned heap, then given back


class _State:  # what _new_phase reads of a TrainState
    def __init__(self, augment):
        self.augment, self.epoch = augment, 0


def test_memory_is_released_when_the_size_or_the_stage_changes(monkeypatch):
    calls = []
    monkeypatch.setattr(epoch, "release_free_memory", lambda: calls.append(state.epoch))
    state = _State(RandomResizedCropFlip([224, 160, 192, 224, 224]))
    for e, end_to_end in enumerate([False, True, True, True, True]):
        state.epoch = e
        epoch._new_phase(state, end_to_end)
    assert calls == [1, 2, 3]  # unfrozen at 160, then 192, then 224; nothing at the first epoch or a repeat
