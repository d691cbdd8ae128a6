"""Group commit: many request threads' writes in one transaction, each answered after it commits.

A request thread hands its work to the process's writer thread and waits. The writer takes
everything queued, runs it in one transaction (one fsync, one turn on the write lock) and
then answers every waiter: with its result once the commit is done, so nothing is
acknowledged before it is durable. If a group fails, each of its items is tried alone,
so one bad item fails only its own request.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run: Callable[[list[Item]], list[Result]], *, max_group: int = 256, name: str = "writer"):
        self._run = run  # one transaction over the items; a result for each, in order
        self._max_group = max_group
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._start = threading.Lock()
        self._pid: int | None = None

    def submit(self, item: Item) -> Result:
        """Blocks until the item's transaction has committed; raises what it raised."""
        return self.submit_later(item).result()

    def submit_later(self, item: Item) -> Future:
        """Queues the item; the future is done once its transaction has committed (or failed)."""
        self._ensure_writer()
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def _ensure_writer(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start:  # started in the process that writes: a thread does not survive fork()
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._loop, args=(self._queue,), name=self._name, daemon=True).start()
                self._pid = os.getpid()

    def _loop(self, waiting: queue.SimpleQueue) -> None:
        while True:
            group = [waiting.get()]
            while len(group) < self._max_group:
                try:
                    group.append(waiting.get_nowait())
                except queue.Empty:
                    break
            self._commit(group)

    def _commit(self, group: list[tuple[Item, Future]]) -> None:
        try:
            results = self._run([item for item, _ in group])
        except BaseException as exc:  # noqa: BLE001 - handed to the waiters
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            for one in group:  # find whose item it was: each alone
                self._commit([one])
            return
        for (_, future), result in zip(group, results):
            future.set_result(result)
