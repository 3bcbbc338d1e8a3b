"""`SlimQueue` and `SlimEvent`: the parts of `asyncio.Queue` and `asyncio.Event` amqtt
uses, without a `collections.deque` each.

An empty deque is 760 bytes (it allocates its first block of 64 slots at once), and
stock amqtt gives every connection four queues of four deques each (items, getters,
putters and the `join()` event's waiters) and three events: about 15 KiB of an idle
session's 39 (tracemalloc). These hold nothing until they have an item or a waiter:
items then go in a deque (an offline session's queue may hold many), waiters in a list.

Both are unbounded and single-loop, as every queue and event amqtt makes is; `put`
never waits. `get` waits as asyncio's does: a getter woken for an item that another
took first waits again, and one cancelled after its wake-up passes it on. A queue can
also be watched (`watch`): the broker's message loop serves three queues and waits on
one future of its own (`CredHandler.next_work`), where stock amqtt kept a task blocked
in `get()` per queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SlimQueue(Generic[T]):
    __slots__ = ("_getters", "_items", "_watcher")

    def __init__(self, watcher: Callable[[], None] | None = None) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._watcher = watcher

    def watch(self, watcher: Callable[[], None]) -> None:
        """Call `watcher` after every put from now on, instead of any earlier watcher."""
        self._watcher = watcher

    def unwatch(self, watcher: Callable[[], None]) -> None:
        """Stop calling `watcher`, unless another has replaced it."""
        if self._watcher == watcher:  # == : bound methods are made anew at each access
            self._watcher = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._wake_one()
        if self._watcher is not None:
            self._watcher()

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an idle session keeps no deque
        return item

    async def get(self) -> T:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()  # in case it was not woken yet
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._items and not getter.cancelled():
                    self._wake_one()  # it was woken for an item: the next getter's
                raise
        return self.get_nowait()

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


class SlimEvent:
    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            self._waiters.remove(waiter)
