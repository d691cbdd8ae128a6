"""Ironic power control through openstacksdk's baremetal API: power off the node, read power_state.

Options:
  node      the node's UUID or name (required)
  cloud     a clouds.yaml cloud to authenticate with
  endpoint  without cloud: the Ironic API URL, reached without authentication (labs and
            standalone Ironic with auth_strategy=noauth); target.address is the default
"""

from __future__ import annotations

from bridge.fencing.base import OFF, ON, UNKNOWN, FenceTarget
from bridge.fencing.bmccall import Kept, failure

_STATES = {"power off": OFF, "power on": ON}


class IronicPower:
    name = "ironic"

    def __init__(self):
        self._connections = Kept()  # per cloud or endpoint: a Keystone token is reused, not fetched per call

    def power_off(self, target: FenceTarget) -> None:
        # Ironic queues the change and answers 202; the conductor does it, power_state shows it
        node = self._node(target)
        self._connections.call(self._key(target), target, "power off",
                               lambda: self._connection(target).baremetal.set_node_power_state(node, "power off"))

    def power_state(self, target: FenceTarget) -> str:
        node = self._node(target)
        return self._connections.call(self._key(target), target, "power state", lambda: _STATES.get(
            self._connection(target).baremetal.get_node(node).power_state, UNKNOWN))

    @staticmethod
    def _node(target: FenceTarget) -> str:
        node = target.options.get("node")
        if not node:
            raise failure(target, "node", "options.node (the Ironic node's UUID or name) is not set")
        return str(node)

    @staticmethod
    def _key(target: FenceTarget) -> tuple:
        return target.options.get("cloud"), target.options.get("endpoint") or target.address, target.timeout

    def _connection(self, target: FenceTarget):
        cloud, endpoint, timeout = self._key(target)
        if not cloud and not endpoint:
            raise failure(target, "connection", "set options.cloud, or options.endpoint for an unauthenticated Ironic")
        import openstack  # on first use: importing it costs every CLI command 2 s

        return self._connections.get(self._key(target), lambda: (
            openstack.connect(cloud=cloud, api_timeout=timeout) if cloud else
            openstack.connection.Connection(auth_type="none", baremetal_endpoint_override=endpoint,
                                            api_timeout=timeout)))[0]
