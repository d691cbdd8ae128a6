"""One call to a BMC or power API, bounded by the target's time-out, failing only as FenceError.

Client libraries retry, sleep and (pyghmi) wait on a shared I/O thread; none of them promises to
return in time. The call runs in a daemon thread and the caller waits at most target.timeout.
A call that overruns keeps running in the background until the library's own time-outs end it.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from bridge.fencing.base import FenceError, FenceTarget

T = TypeVar("T")


def scrub(text: str, target: FenceTarget) -> str:
    """text without the target's password (a library may echo what it sent)."""
    secret = target.password.reveal() if target.password else ""
    return text.replace(secret, "***") if secret else text


def failure(target: FenceTarget, what: str, error: BaseException | str) -> FenceError:
    """A FenceError that names the driver, host and address, never the password."""
    cause = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    where = f"at {target.address}" if target.address else f"with {dict(target.options)}"
    return FenceError(scrub(f"{target.method} {what} of {target.host} {where}: {cause}", target))


def bounded(target: FenceTarget, what: str, call: Callable[[], T]) -> T:
    """call()'s result; FenceError if it raises or has not returned within target.timeout."""
    box: dict[str, object] = {}

    def work():
        try:
            box["value"] = call()
        except FenceError as e:  # made by failure() already
            box["error"] = e
        except Exception as e:  # any library failure is "no proof", never a crash of the engine
            box["error"] = failure(target, what, e)

    worker = threading.Thread(target=work, name=f"fence-{target.method}-{target.host}", daemon=True)
    worker.start()
    worker.join(target.timeout)
    if worker.is_alive():
        raise failure(target, what, f"no answer within {target.timeout:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class Kept:
    """Client objects a driver keeps between calls (a login, a connection), one per key; a failed
    call forgets its key's, so the next one starts afresh (a BMC reset, a lost session)."""

    def __init__(self):
        self._objects: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, make: Callable[[], T]) -> tuple[T, bool]:
        """(the object kept for key or made now, whether it was made now)."""
        with self._lock:
            kept = self._objects.get(key)
        if kept is not None:
            return kept, False  # type: ignore[return-value]
        made = make()
        with self._lock:
            self._objects[key] = made
        return made, True

    def call(self, key: tuple, target: FenceTarget, what: str, call: Callable[[], T]) -> T:
        """bounded(target, what, call), forgetting key's object if it fails."""
        try:
            return bounded(target, what, call)
        except FenceError:
            # its last reference goes with a thread of its own (never a name here): its finaliser
            # may call the BMC (sushy logs out), and that must not hold up the caller
            with self._lock:
                threading.Thread(target=lambda kept: None, args=(self._objects.pop(key, None),), daemon=True).start()
            raise
