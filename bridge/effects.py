"""Typed effects: what a decision asks the outside world to do, and what came of it.

A decision names at most one effect; bridge.executor maps each effect type to the one
adapter that carries it out. `mutates` says whether the effect changes the world (a BMC,
Nova); dry-run skips exactly those, in the executor and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Effect:
    host: str
    mutates: ClassVar[bool] = True
    touches_nova: ClassVar[bool] = False


@dataclass(frozen=True)
class FenceRequest(Effect):
    """Ask the fencing driver to power the host off (a person, for the manual driver)."""

    method: str = "manual"  # the driver's name
    index: int = 0  # which of the host's fencing methods
    attempt: int = 0  # which attempt of that method, from 0


@dataclass(frozen=True)
class FenceCheck(Effect):
    """Ask the fencing driver for proof: a power state read back, or a confirmation."""

    method: str = "manual"
    index: int = 0
    attempt: int = 0
    mutates: ClassVar[bool] = False


@dataclass(frozen=True)
class ForceDown(Effect):
    """Nova: mark the host's nova-compute service forced down."""

    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class Disable(Effect):
    """Nova: disable the host's nova-compute service with a reason (after force-down)."""

    reason: str = ""
    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class ListServers(Effect):
    """Nova: list the host's servers once (paged) and plan each one's action by policy (a read)."""

    rules: tuple[str, ...] = ()  # the rules that mapped the incident's alerts (servers.groups by rule)
    mutates: ClassVar[bool] = False
    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class IssueServerRequests(Effect):
    """Nova: these pending servers' requests (lock + evacuate, reset-state), concurrently."""

    servers: tuple[str, ...] = ()
    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class PollServers(Effect):
    """Nova: read back these requested servers; stop again, unlock, or retry as each needs."""

    servers: tuple[str, ...] = ()
    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class ReleaseServers(Effect):
    """Nova: the incident is closed; unlock these servers where the lock is the bridge's own."""

    servers: tuple[str, ...] = ()
    touches_nova: ClassVar[bool] = True


@dataclass(frozen=True)
class ReturnHost(Effect):
    """Nova: one step of returning the host to service (undo force-down, wait for up, enable)."""

    enable: bool = True
    ours: str = ""  # the start of the disabled_reason the bridge wrote: only that one is enabled again
    touches_nova: ClassVar[bool] = True


EFFECT_TYPES: tuple[type[Effect], ...] = (FenceRequest, FenceCheck, ForceDown, Disable,
                                          ListServers, IssueServerRequests, PollServers, ReturnHost,
                                          ReleaseServers)


@dataclass(frozen=True)
class Evidence:
    """Something that says a host is fenced. id None: found by a driver, not yet recorded."""

    id: int | None
    incident_id: int | None
    host: str
    kind: str  # the fencing driver's name: manual, redfish, ipmi, ...
    actor: str
    reason: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Outcome:
    """What carrying out an effect came to."""

    effect: Effect
    note: str | None = None  # for the timeline; None records nothing
    detail: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    shadow: bool = False  # shadow mode: nothing was done; note and detail say what would have been
    error: str | None = None  # the adapter failed (attempts exhausted, refused)
    proof: Evidence | None = None  # FenceCheck: the host is fenced, and this proves it
    refused: str | None = None  # FenceCheck: the driver cannot fence this host
    recheck_at: datetime | None = None  # FenceCheck pending: when to look again (None: on an event)
    servers: tuple = ()  # server effects: the per-server rows (bridge.servers.ServerAction) they changed
