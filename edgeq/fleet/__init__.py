"""Fleet: the device inventory, transports (ssh, local), deploy/rollback, check, bench, predict and numerics.

This is the fleet's public API: the pipeline's fleet stages import nothing else from edgeq.fleet (an
import-linter contract in pyproject.toml holds them to it).

Importing this package is cheap (no paramiko, numpy, TensorFlow or record models): each name below is
imported on first use, so `edgeq devices list` loads the inventory and not the rest (~90 ms less).
The core functions return records (edgeq.records.fleet) and never print; per-board failures are data,
not raises: deploy, rollback, check and bench return a FleetSummary (`.to_json()` is the --json document).
(The modules are named apart from the functions they hold — benchmarks.bench, deployment.deploy,
predictions.predict — so loading a submodule never replaces a public function of the package.)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeq.fleet.benchmarks import BenchModel, bench, bench_models, bench_result, unmeasured_result
    from edgeq.fleet.deployment import deploy, raise_for_failures, rollback
    from edgeq.fleet.fanout import FleetInterrupted
    from edgeq.fleet.health import check
    from edgeq.fleet.inventory import open_inventory
    from edgeq.fleet.inventory.devices import DeviceSpec, Inventory, PowerSpec, load_inventory
    from edgeq.fleet.numeric import golden_rows, numeric_check
    from edgeq.fleet.opsprofile import profile_ops
    from edgeq.fleet.predictions import predict
    from edgeq.fleet.sessions import DEFAULT_SESSIONS, Sizing, merge_sessions, parse_ci_target, per_session
    from edgeq.fleet.transport.base import BoardError, Transport

# where each public name lives (imported by __getattr__ on first use, then kept as a plain attribute)
_HOMES = {
    "edgeq.fleet.benchmarks": ("BenchModel", "bench", "bench_models", "bench_result", "unmeasured_result"),
    "edgeq.fleet.deployment": ("deploy", "raise_for_failures", "rollback"),
    "edgeq.fleet.fanout": ("FleetInterrupted",),
    "edgeq.fleet.health": ("check",),
    "edgeq.fleet.inventory": ("open_inventory",),
    "edgeq.fleet.inventory.devices": ("DeviceSpec", "Inventory", "PowerSpec", "load_inventory"),
    "edgeq.fleet.numeric": ("golden_rows", "numeric_check"),
    "edgeq.fleet.opsprofile": ("profile_ops",),
    "edgeq.fleet.predictions": ("predict",),
    "edgeq.fleet.sessions": ("DEFAULT_SESSIONS", "Sizing", "merge_sessions", "parse_ci_target", "per_session"),
    "edgeq.fleet.transport.base": ("BoardError", "Transport"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_SESSIONS",
    "BenchModel",
    "BoardError",
    "DeviceSpec",
    "FleetInterrupted",
    "Inventory",
    "PowerSpec",
    "Sizing",
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
    "parse_ci_target",
    "open_inventory",
    "per_session",
    "predict",
    "profile_ops",
    "raise_for_failures",
    "rollback",
    "unmeasured_result",
]
