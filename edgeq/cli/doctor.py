"""`edgeq doctor`: what is installed and in use on this host (runtime, extras, devices file, home, history, tools).

Fast on purpose: package versions come from importlib.metadata (TensorFlow and the runtimes are never imported),
the history database is opened read-only (never created or migrated), and each tool on PATH gets a few seconds.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from edgeq.cli import output
from edgeq.cli.layout import Col
from edgeq.cli.options import DevicesOpt, JsonOpt

if TYPE_CHECKING:  # the records (pydantic) load only when doctor runs: `edgeq -h` stays fast
    from edgeq.records.doctor import DoctorCheck, DoctorReport

TOOL_TIMEOUT_S = 5.0  # a tool that hangs on --version (a wedged NFS mount on PATH) must not hold doctor up

# (dist, what it enables); the runtime that runs .tflite models on this host (the boards have their own)
RUNTIMES = (
    ("ai-edge-litert", "the maintained TFLite runtime: local board, inspect, validate"),
    ("tflite-runtime", "the legacy TFLite runtime (numpy<2 only)"),
)
# extra -> (dists, what it enables)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "train": (("tensorflow", "tf-keras", "tensorflow-model-optimization"), "edgeq run: train, quantize, validate, QAT"),
    "labgrid": (("labgrid",), "labgrid: devices.yaml `labgrid:` places"),
    "tflite-quant": (("litert-quantizer",), "litert-quantizer: model.tflite sources, weight_only variants"),
    "torch": (("litert-torch", "torch"), "model.torch sources"),
}
SHORT = {"tensorflow-model-optimization": "tfmot"}  # a version cell fits an 80-column table
# tool -> (its executables: upstream's name, Debian's; what it is for; where to get it)
TOOLS = {
    "promtool": (
        ("promtool",),
        "checks the shipped alert rules (promtool test rules)",
        "install Prometheus (apt install prometheus)",
    ),
    "pushgateway": (
        ("pushgateway", "prometheus-pushgateway"),
        "a target for `edgeq metrics push --gateway`",
        "apt install prometheus-pushgateway",
    ),
    "node_exporter": (
        ("node_exporter", "prometheus-node-exporter"),
        "reads `edgeq metrics textfile` *.prom files",
        "apt install prometheus-node-exporter",
    ),
}


def _version(dist: str) -> str | None:
    from importlib import metadata  # imported when doctor runs, not for `edgeq -h`

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _runtime_checks() -> list[DoctorCheck]:
    from edgeq.records.doctor import DoctorCheck

    found = {dist: _version(dist) for dist, _ in RUNTIMES}
    any_found = any(found.values())
    return [
        DoctorCheck(
            group="runtime",
            name=dist,
            found=found[dist] is not None,
            version=found[dist],
            detail=what,
            hint="" if any_found or dist != "ai-edge-litert" else "pip install ai-edge-litert (no TFLite runtime found)",
        )
        for dist, what in RUNTIMES
    ]


def _versions(versions: dict[str, str | None]) -> str | None:
    """The version alone for an extra of one package; "tensorflow 2.21.0, tf-keras 2.21.0, ..." for several."""
    if len(versions) == 1:
        return next(iter(versions.values()))
    return ", ".join(f"{SHORT.get(d, d)} {v}" for d, v in versions.items() if v) or None


def _extra_checks() -> list[DoctorCheck]:
    from edgeq.records.doctor import DoctorCheck

    checks = []
    for extra, (dists, what) in EXTRAS.items():
        versions = {d: _version(d) for d in dists}
        missing = [d for d, v in versions.items() if v is None]
        checks.append(
            DoctorCheck(
                group="extra",
                name=f"[{extra}]",
                found=not missing,
                version=_versions(versions),
                detail=what,
                hint=f"pip install 'edgeq[{extra}]' (missing: {', '.join(missing)})" if missing else "",
            )
        )
    return checks


def _tool_version(exe: str) -> str | None:
    import subprocess

    try:
        p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return None
    text = (p.stdout + p.stderr).strip()  # Prometheus' tools print their version on stderr
    m = re.search(r"version (\S+)", text)  # "promtool, version 2.42.0+ds (branch: ...)"
    return m.group(1) if m else (text.splitlines()[0].strip() if text else None)


def _tool_checks() -> list[DoctorCheck]:
    from edgeq.records.doctor import DoctorCheck

    checks = []
    for tool, (names, what, how) in TOOLS.items():
        exe = next((p for p in map(shutil.which, names) if p), None)
        checks.append(
            DoctorCheck(
                group="tools",
                name=tool,
                found=exe is not None,
                version=_tool_version(exe) if exe else None,
                detail=f"{exe}: {what}" if exe else what,
                hint="" if exe else f"optional: {how}",
            )
        )
    return checks


def read_schema(db: Path) -> tuple[int | None, str]:
    """The history database's schema version, read-only: (None, why) when it does not exist or cannot be read."""
    import sqlite3

    if not db.is_file():
        return None, "no history yet: `edgeq run` or `edgeq bench` creates it"
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        return None, f"cannot open it read-only: {e}"
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.Error as e:
        return None, f"not readable as a history database: {e}"
    finally:
        conn.close()
    return (int(row[0]), "") if row and row[0] is not None else (None, "no schema version recorded")


def _file_checks(devices: Path | None) -> tuple[list[DoctorCheck], dict[str, Any]]:
    from edgeq import paths
    from edgeq.fleet.inventory.devices import find_devices_file
    from edgeq.records.doctor import DoctorCheck
    from edgeq.results.db import SCHEMA_VERSION, default_db_path

    home = paths.home()
    dev = find_devices_file(devices)
    dev = dev.absolute() if dev else None  # "devices.yaml" found in the working folder: say which folder
    db = default_db_path(home)
    schema, why = read_schema(db)
    if schema is None:
        db_hint = why
    elif schema > SCHEMA_VERSION:
        db_hint = f"schema {schema} is newer than this edgeq knows ({SCHEMA_VERSION}): upgrade edgeq"
    elif schema < SCHEMA_VERSION:
        db_hint = f"an older schema: the next command that records a run upgrades it to {SCHEMA_VERSION}, keeping every run"
    else:
        db_hint = ""
    checks = [
        DoctorCheck(
            group="files",
            name="home",
            found=home.is_dir(),
            detail=str(home),
            hint="" if home.is_dir() else "created by the first `edgeq run` or `edgeq bench` (or set $EDGEQ_HOME)",
        ),
        DoctorCheck(
            group="files",
            name="devices file",
            found=dev is not None and dev.is_file(),
            detail=str(dev) if dev else "none: the built-in `local` board",
            hint=(
                "`edgeq init` writes one (or --devices / $EDGEQ_DEVICES)"
                if dev is None
                else ""
                if dev.is_file()
                else f"{dev} does not exist: fix --devices / $EDGEQ_DEVICES"
            ),
        ),
        DoctorCheck(
            group="files",
            name="history",
            found=schema is not None,
            version=f"schema {schema}" if schema is not None else None,
            detail=str(db),
            hint=db_hint,
        ),
    ]
    facts = {
        "home": str(home),
        "devices_file": str(dev) if dev else None,
        "history_db": str(db),
        "history_schema": schema,
        "history_schema_supported": SCHEMA_VERSION,
    }
    return checks, facts


def diagnose(devices: Path | None = None) -> DoctorReport:
    """Everything doctor reports; prints nothing."""
    import platform

    from edgeq import __version__
    from edgeq.agent import agent_sha256
    from edgeq.records.doctor import DoctorReport

    files, facts = _file_checks(devices)
    checks = [*_runtime_checks(), *_extra_checks(), *files, *_tool_checks()]
    return DoctorReport(
        edgeq=__version__,
        python=platform.python_version(),
        python_executable=sys.executable,
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        agent_sha256=agent_sha256(),
        checks=tuple(checks),
        **facts,
    )


def _notes(c: DoctorCheck) -> str:
    return f"{c.detail}; {c.hint}" if c.detail and c.hint else c.hint or c.detail


def _rows(r: DoctorReport) -> list[list[str]]:
    return [[c.name, c.version or ("yes" if c.found else "missing"), _notes(c)] for c in r.checks]


def doctor_cmd(devices: DevicesOpt = None, json_out: JsonOpt = False) -> None:
    """What edgeq finds on this host: runtime, extras, devices file, home, history schema, Prometheus tools.

    Each missing part names what to do. Exits 0 whenever it could report, even with optional parts missing.
    Imports no TensorFlow or runtime; opens the history database read-only.
    """
    output.use_json(json_out)
    report = diagnose(devices)
    if json_out:
        output.emit({"ok": True, **report.to_json()})
        return
    output.echo(f"edgeq {report.edgeq}, Python {report.python}, {report.platform}")
    output.echo(f"python: {report.python_executable}")
    output.echo(f"home: {report.home}")
    output.echo(f"agent: sha256 {report.agent_sha256[:12]} (the zipapp `edgeq deploy` and `bench` copy to boards)")
    cols = [Col("Check"), Col("Found", items=True), Col("What it is for / what to do", wrap=True)]
    output.table("doctor", cols, _rows(report))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
