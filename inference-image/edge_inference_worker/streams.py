"""Generic stream helpers of the frame pipeline: timing a generator, reading ahead on a thread with a
bound, and batches aligned to absolute indices. They know nothing of video."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class HasIndex(Protocol):
    """An item with an absolute position in its stream (a sampled frame's sample index)."""

    @property
    def index(self) -> int: ...


Indexed = TypeVar("Indexed", bound=HasIndex)


def timed(items: Iterable[T], observe: Callable[[float], None]) -> Iterator[T]:
    """Yield from `items`, observing the time spent producing each item."""
    iterator = iter(items)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        observe(time.perf_counter() - started)
        yield item


@dataclass(frozen=True)
class ReadAheadLimit:
    """How far a producer may run ahead: up to `budget_bytes` of items, at least `min_items`, at most `max_items`.

    `reserve_items` items' worth of bytes, at the size of the first item, are held elsewhere and taken
    off the budget.
    """

    budget_bytes: int
    min_items: int
    max_items: int
    reserve_items: int = 0


class ReadAhead(Iterator[T]):
    """Items of `items`, produced by a background thread at most `limit` ahead (sizes from `size_of`).

    Decoding the next frames while the detector works on this one fills the CPU time torch leaves
    idle between its parallel sections (docs/benchmarks.md, "Overhead", for the gain measured).
    An exception of the producer is raised here after the items before it. Close this iterator (or
    exhaust it) before closing what `items` reads: closing stops and joins the producer.
    """

    def __init__(self, items: Iterable[T], limit: ReadAheadLimit, size_of: Callable[[T], int] = lambda _: 0) -> None:
        self._limit = limit
        self._size_of = size_of
        self._changed = threading.Condition()
        self._held: collections.deque[tuple[T, int]] = collections.deque()
        self._bytes = 0
        self._first_size: int | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._produce, args=(items,), name="decode-ahead", daemon=True)
        self._thread.start()

    @property
    def held_items(self) -> int:
        with self._changed:
            return len(self._held)

    @property
    def held_bytes(self) -> int:
        with self._changed:
            return self._bytes

    def __next__(self) -> T:
        with self._changed:
            while not self._held and not self._finished:
                self._changed.wait()
            if self._held:
                item, size = self._held.popleft()
                self._bytes -= size
                self._changed.notify_all()
                return item
            error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        """Stop the producer (it finishes the item it is making) and wait for it."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()
        self._thread.join()

    def _produce(self, items: Iterable[T]) -> None:
        try:
            self._offer_all(items)
            self._finish(None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._finish(exc)

    def _offer_all(self, items: Iterable[T]) -> None:
        source = iter(items)
        try:
            for item in source:
                if not self._offer(item, self._size_of(item)):
                    return
        finally:
            close = getattr(source, "close", None)  # a generator: run its cleanup (the decoder's) here
            if close is not None:
                close()

    def _offer(self, item: T, size: int) -> bool:
        with self._changed:
            while not self._cancelled and self._full(size):
                self._changed.wait()
            if self._cancelled:
                return False
            self._held.append((item, size))
            self._bytes += size
            self._changed.notify_all()
            return True

    def _full(self, size: int) -> bool:
        held, limit = len(self._held), self._limit
        if self._first_size is None:
            self._first_size = size
        if held >= limit.max_items:
            return True
        budget = limit.budget_bytes - limit.reserve_items * self._first_size
        return held >= limit.min_items and self._bytes + size > budget

    def _finish(self, error: BaseException | None) -> None:
        with self._changed:
            self._finished, self._error = True, error
            self._changed.notify_all()


def aligned_batches(frames: Iterable[Indexed], size: int) -> Iterator[list[Indexed]]:
    """Group items by `index // size`, so batch boundaries do not depend on where we started."""
    batch: list[Indexed] = []
    for frame in frames:
        if batch and frame.index // size != batch[0].index // size:
            yield batch
            batch = []
        batch.append(frame)
    if batch:
        yield batch
