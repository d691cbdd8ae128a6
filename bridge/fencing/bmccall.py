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
