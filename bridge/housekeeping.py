"""Retention run by the engine: a thread that prunes once at start, then every interval."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from bridge.store.database import WriteLock
from bridge.store.retention import Retention, prune

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, config, engine, clock: Callable[[], datetime]):
        self.policy = Retention.from_config(config)
        self.interval = config["retention"]["interval"]
        self.engine = engine  # the database's
        self.write_lock = WriteLock(engine)
        self.clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> dict[str, int]:
        done = prune(self.engine, self.policy, self.clock(), write_lock=self.write_lock)
        if any(done.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in done.items()))
        return done

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # a conflict with a concurrent writer, a lost connection: next time
                log.exception("retention run failed; trying again in %gs", self.interval)
            self._stopping.wait(self.interval)
