"""`edgeq -h` and `edgeq devices list` stay fast: what they must not import (timed in bench/startup_bench.py).

Not a timing test: a module on this list at start-up is the regression itself (edgeq.config's pydantic models
on -h cost ~90 ms; TensorFlow seconds), and sys.modules says so the same way on a loaded machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NEVER = ("tensorflow", "keras", "paramiko", "cryptography", "matplotlib", "numpy", "ai_edge_litert", "edgeq.results")
# -h parses nothing and reads no file: no pydantic, no YAML, no spec or record models, no fleet package
HELP_NEVER = (*NEVER, "pydantic", "yaml", "edgeq.config", "edgeq.records", "edgeq.fleet")
# devices list reads devices.yaml only: not the pipeline specs, not the fleet's operations, records or SSH transport
LIST_NEVER = (
    *NEVER,
    "edgeq.config.pipeline",
    "edgeq.config.pipelinefile",
    "edgeq.records",
    "edgeq.fleet.benchmarks",
    "edgeq.fleet.deployment",
    "edgeq.fleet.board",
    "edgeq.fleet.transport.ssh",
)


def _loaded_by(args: list[str], forbidden: tuple[str, ...], cwd) -> tuple[list[str], str]:
    probe = (
        "import sys\nfrom edgeq.cli import main\n"
        f"sys.argv = ['edgeq', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"print('LOADED=' + ','.join(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEQ_DEVICES", "EDGEQ_HOME")}
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)  # noqa: S603
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("LOADED="))
    return [m for m in line.removeprefix("LOADED=").split(",") if m], p.stdout


@pytest.mark.parametrize(
    ("args", "forbidden", "shown"),
    [(["-h"], HELP_NEVER, "devices"), (["devices", "list"], LIST_NEVER, "local")],
    ids=["help", "devices-list"],
)
def test_start_up_imports_nothing_heavy(args, forbidden, shown, tmp_path):
    loaded, out = _loaded_by(args, forbidden, tmp_path)  # no devices.yaml here: the embedded `local` board
    assert shown in out
    assert loaded == [], f"`edgeq {' '.join(args)}` imported {loaded}: move the import into the function that needs it"


def test_the_lazy_fleet_package_keeps_its_functions_over_same_named_submodules(tmp_path):
    """edgeq.fleet imports its public names on first use; a submodule loaded first (edgeq.fleet.deployment, as
    dryrun and numeric do) must not replace a function such as fleet.deploy as the package's attribute: no
    submodule is named like a public name."""
    probe = (
        "import edgeq.fleet.deployment, edgeq.fleet.benchmarks\nfrom edgeq.fleet import dryrun\nfrom edgeq import fleet\n"
        "assert fleet.deploy.__module__ == 'edgeq.fleet.deployment' and callable(fleet.deploy), fleet.deploy\n"
        "assert fleet.bench.__module__ == 'edgeq.fleet.benchmarks' and callable(fleet.bench), fleet.bench\n"
        "assert [n for n in fleet.__all__ if getattr(fleet, n) is None] == []\n"
        "import pkgutil\n"
        "assert not {m.name for m in pkgutil.iter_modules(fleet.__path__)} & set(fleet.__all__)\n"
        "from edgeq.fleet import *  # noqa: F403\n"
        "print(dryrun.__name__, fleet.paths.__name__)\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)  # noqa: S603
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["edgeq.fleet.dryrun", "edgeq.fleet.paths"]
