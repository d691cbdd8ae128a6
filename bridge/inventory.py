"""Nova's compute hosts, as the bridge knows them, and what a name given by an alert or a
person means among them. Alerts and confirmations resolve names here, the same way."""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Callable

from bridge.nova import Nova, NovaError
from bridge.rules import resolve_host
from bridge.store import Store

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # after a failed refresh, Nova is not asked again sooner


class InventoryUnavailable(RuntimeError):
    """A cloud is configured, but Nova has not told us its hosts yet."""


def domain_aggregates(config) -> re.Pattern | None:
    """The aggregates that are failure domains (gates.failure_domain {nova: aggregate}), if any."""
    domain = config["gates"]["failure_domain"] or {}
    return re.compile(domain.get("match", ".*")) if domain.get("nova") == "aggregate" else None


class Inventory:
    def __init__(self, store: Store, nova: Nova | None, *, ttl: float, clock: Callable[[], datetime],
                 aggregates: re.Pattern | None = None):
        self.store = store
        self.nova = nova
        self.ttl = ttl
        self.clock = clock
        self.aggregates = aggregates  # read each host's failure-domain aggregate with the services
        self._lock = threading.Lock()
        self._tried: datetime | None = None
        self._error: str | None = None  # the last refresh failed, and none worked since
        self._known: tuple[list[str], datetime | None] | None = None  # the stored list, when it was refreshed
        self._asked: datetime | None = None  # the refresh time of the list last given out

    def nova_state(self) -> tuple[bool | None, str]:
        """Whether Nova answered the last refresh (None: no cloud), and its error if not."""
        if self.nova is None:
            return None, ""
        return self._error is None, self._error or ""

    def known_hosts(self, refresh: bool = False) -> list[str] | None:
        """The stored list, refreshed when old or asked to; None: no cloud to ask.

        Kept in memory while fresh (reading a thousand hosts costs about 8 ms, and intake asks
        for every signal); asked to refresh, the store is read first: another process may have
        just refreshed it."""
        if self.nova is None:
            return None
        with self._lock:  # one refresh at a time; the others then read its result
            now = self.clock()
            if self._known is not None and not refresh and not self._old(self._known[1], now):
                return self._known[0]
            hosts, refreshed = self._known = self.store.inventory()
            newer = refresh and self._asked is not None and refreshed is not None and refreshed > self._asked
            recently_tried = self._tried is not None and now - self._tried < timedelta(seconds=RETRY_SECONDS)
            if (self._old(refreshed, now) or refresh) and not newer and not recently_tried:
                self._tried = now
                try:
                    services = self.nova.compute_services()
                    if self.aggregates is not None:
                        services = self._with_aggregates(services)
                except NovaError as exc:
                    log.warning("cannot refresh the compute host inventory: %s", exc)
                    self._error = str(exc)
                else:
                    self._error = None
                    self.store.replace_inventory(services, now)
                    self._known = [s["host"] for s in services], now
            self._asked = self._known[1]
            return self._known[0]

    def _old(self, refreshed: datetime | None, now: datetime) -> bool:
        return refreshed is None or now - refreshed > timedelta(seconds=self.ttl)

    def _with_aggregates(self, services: list[dict]) -> list[dict]:
        """Each service with its host's failure-domain aggregate: the first by name that matches."""
        found = self.nova.host_aggregates()
        return [{**s, "aggregate": next((a for a in sorted(found.get(s["host"], ()))
                                         if self.aggregates.fullmatch(a)), None)} for s in services]

    def resolve(self, candidate: str) -> tuple[str | None, str]:
        """The Nova host a name means, and how it was found (or why none).

        Raises InventoryUnavailable when a cloud is configured but no host list could be had:
        nothing may act on a host that cannot be checked.
        """
        known = self.known_hosts()
        host, how = resolve_host(candidate, known)
        if host is None and known is not None:
            known = self.known_hosts(refresh=True)  # a host added since the last refresh
            host, how = resolve_host(candidate, known)
        if host is None and not known and known is not None:
            raise InventoryUnavailable("no compute host inventory from Nova yet")
        return host, how
