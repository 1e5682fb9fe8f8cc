"""Progress bars with an ETA on stderr for the passes that take minutes on a CPU: validation, the test pass and
`evaluate` (the training bar is hooks/progress.py, decoding's is data/decode.py). Shown on an interactive
terminal only and never when quiet, so logs, pipes and captured output stay one line per event."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

__all__ = ["Bar", "chunks", "interactive"]


def interactive(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


def chunks(n: int, size: int, progress: Callable[[int, int], None] | None = None) -> Iterator[int]:
    """Start indices 0, size, 2 size ... below n; progress(done, n) is told before the first and after each."""
    if progress is not None:
        progress(0, n)
    for start in range(0, n, size):
        yield start
        if progress is not None:
            progress(min(start + size, n), n)


class Bar:
    """A progress(done, total) callable drawing a tqdm bar over images, opened at its first call; it draws
    nothing when `show` is false. Close it (or use `with`) when the pass is over."""

    def __init__(self, desc: str, show: bool):
        self.desc, self.show, self.tqdm = desc, show, None

    def __call__(self, done: int, total: int) -> None:
        if not self.show:
            return
        if self.tqdm is None:
            from tqdm.auto import tqdm
            self.tqdm = tqdm(total=total, desc=self.desc, unit="img", leave=False, dynamic_ncols=True)
        self.tqdm.update(done - self.tqdm.n)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
