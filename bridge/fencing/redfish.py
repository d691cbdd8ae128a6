"""Redfish power control with sushy: ComputerSystem.Reset ForceOff, and PowerState read back.

target.address is the BMC's URL (https:// when no scheme is given). Options:
  system_id  the ComputerSystem's Id or path; default: the only system the BMC lists
  verify     verify the BMC's TLS certificate (default true)
  ca_bundle  a CA file or directory to verify it with
  auth       session, basic, or auto (default: a session when the BMC offers one, else basic)
"""

from __future__ import annotations

from bridge.fencing.base import OFF, ON, UNKNOWN, FenceTarget
from bridge.fencing.bmccall import bounded, failure

# sushy's PowerState values; PoweringOn/Off: the host may still run, so it counts as on (never proof)
_STATES = {"Off": OFF, "On": ON, "PoweringOn": ON, "PoweringOff": ON}
_AUTH = {"session": "SessionAuth", "basic": "BasicAuth", "auto": "SessionOrBasicAuth"}  # sushy.auth classes


def base_url(address: str) -> str:
    return address.rstrip("/") if "://" in address else f"https://{address.rstrip('/')}"


class RedfishPower:
    name = "redfish"

    def power_off(self, target: FenceTarget) -> None:
        def force_off():
            import sushy

            system = self._system(target)
            try:
                system.reset_system(sushy.ResetType.FORCE_OFF)
            except sushy.exceptions.HTTPError as e:
                # some BMCs refuse ForceOff of a host that is off (409, 400): that is no failure
                if isinstance(e, sushy.exceptions.AccessError):
                    raise
                system.refresh(force=True)
                if system.power_state != sushy.PowerState.OFF:
                    raise

        bounded(target, "power off", force_off)

    def power_state(self, target: FenceTarget) -> str:
        return bounded(target, "power state",
                       lambda: _STATES.get(getattr(self._system(target).power_state, "value", None), UNKNOWN))

    def _system(self, target: FenceTarget):
        import sushy  # on first use: importing it costs every CLI command a quarter second
        from sushy import auth as sushy_auth

        options = target.options
        auth_name = options.get("auth", "auto")
        if auth_name not in _AUTH:
            raise failure(target, "login", f"auth must be one of {', '.join(_AUTH)}, not {auth_name!r}")
        verify = options.get("ca_bundle") or bool(options.get("verify", True))
        password = target.password.reveal() if target.password else None
        # one attempt per request, each no longer than the whole call may take
        root = sushy.Sushy(base_url(target.address), verify=verify,
                           auth=getattr(sushy_auth, _AUTH[auth_name])(username=target.username, password=password),
                           server_side_retries=1, server_side_retries_delay=0,
                           read_timeout=target.timeout, connect_timeout=target.timeout)
        system_id = options.get("system_id")
        if system_id and not str(system_id).startswith("/"):
            system_id = f"{root.get_system_collection().path.rstrip('/')}/{system_id}"
        return root.get_system(system_id)
