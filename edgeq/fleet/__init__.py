"""Fleet: the device inventory, transports (ssh, local), deploy/rollback, check, bench and predict.

Importing this package is cheap (no paramiko, no TensorFlow): `edgeq devices list` relies on it.
The core functions return records (edgeq.records.fleet) and never print; per-board failures are data,
not raises: deploy, rollback, check and bench return a FleetSummary (`.to_json()` is the --json document).
(The function names shadow their modules as package attributes: import helpers with
`from edgeq.fleet.deploy import install_on`, which goes through sys.modules.)
"""

from __future__ import annotations

from edgeq.fleet.bench import bench, bench_result, predict, unmeasured_result
from edgeq.fleet.deploy import deploy, raise_for_failures, rollback
from edgeq.fleet.health import check
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory, PowerSpec, load_inventory
from edgeq.fleet.sessions import DEFAULT_SESSIONS, merge_sessions, per_session
from edgeq.fleet.transport.base import BoardError, Transport

__all__ = [
    "DEFAULT_SESSIONS",
    "BoardError",
    "DeviceSpec",
    "Inventory",
    "PowerSpec",
    "Transport",
    "bench",
    "bench_result",
    "check",
    "deploy",
    "load_inventory",
    "merge_sessions",
    "per_session",
    "predict",
    "raise_for_failures",
    "rollback",
    "unmeasured_result",
]
