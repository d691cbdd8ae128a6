"""Ironic power control through openstacksdk's baremetal API: power off the node, read power_state.

Options:
  node      the node's UUID or name (required)
  cloud     a clouds.yaml cloud to authenticate with
  endpoint  without cloud: the Ironic API URL, reached without authentication (labs and
            standalone Ironic with auth_strategy=noauth); target.address is the default
"""

from __future__ import annotations

import threading

from bridge.fencing.base import OFF, ON, UNKNOWN, FenceTarget
from bridge.fencing.bmccall import bounded, failure

_STATES = {"power off": OFF, "power on": ON}


class IronicPower:
    name = "ironic"

    def __init__(self):
        self._connections: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def power_off(self, target: FenceTarget) -> None:
        # Ironic queues the change and answers 202; the conductor does it, power_state shows it
        node = self._node(target)
        bounded(target, "power off", lambda: self._connection(target).baremetal.set_node_power_state(node, "power off"))

    def power_state(self, target: FenceTarget) -> str:
        node = self._node(target)
        return bounded(target, "power state",
                       lambda: _STATES.get(self._connection(target).baremetal.get_node(node).power_state, UNKNOWN))

    @staticmethod
    def _node(target: FenceTarget) -> str:
        node = target.options.get("node")
        if not node:
            raise failure(target, "node", "options.node (the Ironic node's UUID or name) is not set")
        return str(node)

    def _connection(self, target: FenceTarget):
        """One connection per cloud or endpoint, kept: a Keystone token is reused, not fetched per call."""
        cloud = target.options.get("cloud")
        endpoint = target.options.get("endpoint") or target.address
        if not cloud and not endpoint:
            raise failure(target, "connection", "set options.cloud, or options.endpoint for an unauthenticated Ironic")
        key = (cloud, endpoint, target.timeout)
        import openstack  # on first use: importing it costs every CLI command 2 s

        with self._lock:
            if key not in self._connections:
                self._connections[key] = (
                    openstack.connect(cloud=cloud, api_timeout=target.timeout) if cloud else
                    openstack.connection.Connection(auth_type="none", baremetal_endpoint_override=endpoint,
                                                    api_timeout=target.timeout))
            return self._connections[key]
