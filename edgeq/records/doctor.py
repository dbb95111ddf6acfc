"""What `edgeq doctor` found on this host: one check per line, each with what to do when it is missing."""

from __future__ import annotations

from edgeq.records.base import Record


class DoctorCheck(Record):
    """One thing edgeq may use. `found` False with a `hint` says what to run; `detail` says what it enables or
    where it is (a path)."""

    group: str  # edgeq | runtime | extra | files | tools
    name: str
    found: bool
    version: str | None = None
    detail: str = ""
    hint: str = ""


class DoctorReport(Record):
    """The host as edgeq sees it. Optional parts missing still make a report (`edgeq doctor` exits 0)."""

    edgeq: str
    python: str
    python_executable: str
    platform: str
    home: str
    devices_file: str | None  # None: no devices.yaml found, the embedded `local` board
    history_db: str
    history_schema: int | None  # None: no history database yet (or unreadable: see the check's hint)
    history_schema_supported: int
    agent_sha256: str
    checks: tuple[DoctorCheck, ...]
