"""Run sushy-tools' Redfish emulator (fake driver) with two test switches; its own CLI otherwise.

  --instant   no random 1-11 s delay before a power change shows (fakedriver draws it with randint)
  --stuck-on  accept every reset (204) and never change the power state: a BMC that lies

Run as a script (python tests/harness/sushy_emulator.py ...) by tests/harness/redfish.py.
"""

import sys

from sushy_tools.emulator.main import main
from sushy_tools.emulator.resources.systems import fakedriver


class _NoDelay:
    @staticmethod
    def randint(a, b):
        return 0


if __name__ == "__main__":
    if "--instant" in sys.argv:
        sys.argv.remove("--instant")
        fakedriver.random = _NoDelay
    if "--stuck-on" in sys.argv:
        sys.argv.remove("--stuck-on")
        fakedriver.FakeDriver.set_power_state = lambda self, identity, state: None
    sys.exit(main())
