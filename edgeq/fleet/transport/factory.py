"""The default transport factory: a connected transport for a device's kind (ssh or local).

Its own module so deploy, bench and check depend on the transports, and the transports on nothing
above them. Paramiko is imported only when an SSH board is connected.
"""

from __future__ import annotations

from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import Transport
from edgeq.fleet.transport.local import LocalTransport


def open_transport(device: DeviceSpec, **kw: Any) -> Transport:
    """A connected transport for the device's kind; the caller closes it."""
    if device.transport == "local":
        return LocalTransport(device)
    from edgeq.fleet.transport.ssh import SSHTransport  # seven modules: not imported by `devices list` or a local board

    return SSHTransport(device, **kw).connect()
