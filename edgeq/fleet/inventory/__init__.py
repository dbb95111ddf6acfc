"""Where the boards come from: devices.yaml, or places reserved from a labgrid coordinator.

`open_inventory(spec)` is the one way in for a command that reaches boards, whatever the source: callers never
ask which kind of inventory they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeq.fleet.inventory.devices import Inventory, load_inventory


def _quiet(_message: str) -> None:
    pass


@contextmanager
def open_inventory(spec: Inventory | Path | str | None = None, log: Callable[[str], None] = _quiet) -> Iterator[Inventory]:
    """The boards one command runs on, ready, released when the block ends (errors, Ctrl-C and SIGTERM included).

    `spec`: a devices file (None: $EDGEQ_DEVICES, the working folder's devices.yaml, else the embedded default) or an Inventory
    already loaded. A devices.yaml with `labgrid:` gives the places reserved and acquired for this command (`log`
    says who holds them while it waits); one that lists hosts gives them as they are."""
    inv = spec if isinstance(spec, Inventory) else load_inventory(spec)
    if inv.labgrid is None:
        yield inv
        return
    from edgeq.fleet.inventory.labgrid import leased  # asyncio and labgrid's client: only for places

    with leased(inv, log) as places:
        yield places
