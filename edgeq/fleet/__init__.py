"""Fleet: the device inventory, transports (ssh, local), deploy/rollback, check, bench, predict and numerics.

This is the fleet's public API: the pipeline's fleet stages import nothing else from edgeq.fleet (an
import-linter contract in pyproject.toml holds them to it).

Importing this package is cheap (no paramiko, numpy or TensorFlow): `edgeq devices list` relies on it.
The core functions return records (edgeq.records.fleet) and never print; per-board failures are data,
not raises: deploy, rollback, check and bench return a FleetSummary (`.to_json()` is the --json document).
(The function names shadow their modules as package attributes: import helpers with
`from edgeq.fleet.deploy import install_on`, which goes through sys.modules.)
"""

from __future__ import annotations

from edgeq.fleet.bench import BenchModel, bench, bench_models, bench_result, predict, unmeasured_result
from edgeq.fleet.deploy import deploy, raise_for_failures, rollback
from edgeq.fleet.fanout import FleetInterrupted
from edgeq.fleet.health import check
from edgeq.fleet.inventory import open_inventory
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory, PowerSpec, load_inventory
from edgeq.fleet.numeric import golden_rows, numeric_check
from edgeq.fleet.sessions import DEFAULT_SESSIONS, merge_sessions, per_session
from edgeq.fleet.transport.base import BoardError, Transport

__all__ = [
    "DEFAULT_SESSIONS",
    "BenchModel",
    "BoardError",
    "DeviceSpec",
    "FleetInterrupted",
    "Inventory",
    "PowerSpec",
    "Transport",
    "bench",
    "bench_models",
    "bench_result",
    "check",
    "deploy",
    "golden_rows",
    "load_inventory",
    "merge_sessions",
    "numeric_check",
    "open_inventory",
    "per_session",
    "predict",
    "raise_for_failures",
    "rollback",
    "unmeasured_result",
]
