"""Micro-batching: requests that arrive while the model is busy are run together in its next call.

No request ever waits for company: when the model is idle a lone request runs at once; under load the queue
fills while a batch computes, and the next call takes everything waiting (up to `max_batch` images). One
model call on N images costs far less than N calls on CPU and GPU alike, so batching happens exactly when it
is faster. All model work (predictions and Grad-CAM) runs on one dedicated thread, so the model is never used
by two threads at once.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

__all__ = ["MicroBatcher"]


class MicroBatcher:
    def __init__(self, predict_proba: Callable[[torch.Tensor], torch.Tensor], max_batch: int = 64):
        self.predict_proba = predict_proba   # uint8 (N, C, H, W) -> probabilities (N, K)
        self.max_batch = max_batch
        self.executor: ThreadPoolExecutor | None = None
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.stats = {"batches": 0, "images": 0, "largest_batch": 0, "model_seconds": 0.0}

    async def start(self) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="convclass-model")
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.executor:
            self.executor.shutdown(wait=False)

    async def predict(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, H, W) -> probabilities (n, K), computed in some batch with other waiting requests."""
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((x, fut))
        return await fut

    async def run_exclusive(self, fn: Callable, *args):
        """Run fn(*args) on the model thread, between batches (for work that needs the model alone)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        t = time.perf_counter()
        probs = self.predict_proba(x)
        return probs, time.perf_counter() - t

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            while n < self.max_batch and not self.queue.empty():
                nxt = self.queue.get_nowait()
                items.append(nxt)
                n += len(nxt[0])
            live = [(x, f) for x, f in items if not f.done()]  # a cancelled request needs no answer
            if not live:
                continue
            try:
                probs, secs = await loop.run_in_executor(self.executor, self._run, torch.cat([x for x, _ in live]))
            except Exception as e:  # the model failed: every waiting request gets the error, the loop goes on
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            s = self.stats
            s["batches"] += 1
            s["images"] += len(probs)
            s["largest_batch"] = max(s["largest_batch"], len(probs))
            s["model_seconds"] += secs
            i = 0
            for x, f in live:
                if not f.done():
                    f.set_result(probs[i:i + len(x)])
                i += len(x)
