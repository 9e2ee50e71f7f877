"""One thread that stops statements run past their time, for every statement of a store at once.

A timer thread per statement cost about 0.1 ms of CPU to start and join, and, with the event loop busy, two waits
for the GIL (about 10 ms of latency) on each statement from outside; this thread sleeps until the earliest deadline
and is woken only when a statement comes due sooner than that.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

KEPT_ENDED = 1024  # deadlines of ended blocks the heap may hold before they are swept out with one pass


class Watchdog:
    """Calls each watched statement's `stop` once its time is up, unless its block has ended: never after."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int]] = []  # (deadline, key): a heap, with keys of ended blocks left in it
        self._running: dict[int, Callable[[], None]] = {}  # key -> stop, for the blocks still open
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # the deadline the thread sleeps until

    @contextmanager
    def watch(self, seconds: float, stop: Callable[[], None]) -> Iterator[None]:
        """`stop` is called (from the watchdog's thread) if the block is still running `seconds` from now."""
        deadline = time.monotonic() + seconds
        with self._cond:
            key = next(self._keys)
            self._running[key] = stop
            heapq.heappush(self._due, (deadline, key))
            if len(self._due) > KEPT_ENDED and len(self._due) > 4 * len(self._running):
                # Ended blocks leave only when their deadline comes up: under a long time limit, drop them now.
                self._due = [entry for entry in self._due if entry[1] in self._running]
                heapq.heapify(self._due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:  # `stop` runs under this lock: once the block has ended it cannot be called
                self._running.pop(key, None)

    def _serve(self) -> None:
        with self._cond:
            while self._thread is threading.current_thread():  # until `close` (a later `watch` starts another)
                now = time.monotonic()
                while self._due and (self._due[0][0] <= now or self._due[0][1] not in self._running):
                    _, key = heapq.heappop(self._due)
                    if (stop := self._running.pop(key, None)) is not None:
                        try:
                            stop()
                        except Exception:  # this thread must live on: it guards every other statement
                            log.exception("Stopping a statement that ran past its time failed")
                self._wakes_at = self._due[0][0] if self._due else math.inf
                self._cond.wait(None if not self._due else self._wakes_at - now)

    def close(self) -> None:
        """End the thread; a block still open is watched again only once a later `watch` starts another."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._wakes_at = math.inf
            self._cond.notify_all()
        if thread is not None:
            thread.join()
