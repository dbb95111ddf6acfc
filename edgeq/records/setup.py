"""Records of `devices setup`: what a bare board is (read without the agent), the runtime chosen for it,
and how each board ended.

`SetupOutcome` is a `BoardOutcome` (fan-out and failure records work on it unchanged) with the
set-up's own fields; `SetupSummary` is the --json document of `edgeq devices setup`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import StrictBool, StrictInt

from edgeq.records.base import Record
from edgeq.records.fleet import BoardOutcome, FleetCounts, FleetRecord


class BoardProbe(Record):
    """A board's facts read with its own python, before any agent or runtime is there."""

    python: str  # "3.7.16"
    executable: str | None = None
    arch: str  # uname -m: x86_64, aarch64, armv7l
    libc: str | None = None  # "glibc"
    libc_version: str | None = None  # "2.36"
    os_id: str | None = None  # /etc/os-release ID: debian, ubuntu, mendel, raspbian
    os_version: str | None = None
    os_name: str | None = None  # PRETTY_NAME
    ensurepip: StrictBool = False  # False on Debian/Ubuntu without python3-venv
    apex: StrictBool = False  # /dev/apex_0: a Coral Edge TPU (PCIe/M.2, Dev Board)
    edgetpu_lib: str | None = None  # where libedgetpu.so.1 was found, None if absent
    venv_python: StrictBool = False  # W/venv/bin/python exists
    marker: dict[str, Any] | None = None  # W/venv/edgeq-setup.json as written by the last set-up

    @property
    def py(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def glibc(self) -> tuple[int, int] | None:
        if self.libc != "glibc" or not self.libc_version:
            return None
        try:
            major, minor = self.libc_version.split(".")[:2]
            return int(major), int(minor)
        except ValueError:
            return None


class RuntimeChoice(Record):
    """One candidate runtime for a board: the pip requirements to install and why this one."""

    runtime: str  # the distribution: tflite-runtime or ai-edge-litert
    module: str  # what the verification imports
    requirements: tuple[str, ...]
    reason: str


class SetupOutcome(BoardOutcome):
    """How one board ended in `devices setup`. `action`: "set up", "repaired" or "unchanged"."""

    python: str | None = None  # the devices.yaml value to use from now on (the venv's python)
    python_line: str | None = None  # `python: ...` as it goes into devices.yaml
    base_python: str | None = None  # the interpreter the venv was made from, and its version
    base_python_version: str | None = None
    arch: str | None = None
    glibc: str | None = None
    os: str | None = None
    platform: str | None = None  # the wheel platform tag the host downloaded for
    runtime: str | None = None
    runtime_version: str | None = None
    numpy: str | None = None
    wheels: tuple[str, ...] = ()
    verified: StrictBool | None = None
    verify_output: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()
    written: str | None = None  # the devices.yaml updated by --write (None: not asked, or unchanged)

    omit_if_unset: ClassVar[frozenset[str]] = BoardOutcome.omit_if_unset | frozenset(
        {"python", "python_line", "base_python", "base_python_version", "arch", "glibc", "os", "platform"}
        | {"runtime", "runtime_version", "numpy", "wheels", "verified", "verify_output", "warnings", "written"}
    )


class SetupSummary(FleetRecord):
    """`edgeq devices setup --json`: one outcome per board and the rollout's counts."""

    ok: bool
    action: str = "setup"
    batches: tuple[tuple[str, ...], ...] = ()
    stopped_after_batch: int | None = None
    counts: FleetCounts
    devices: tuple[SetupOutcome | BoardOutcome, ...]
    bytes_uploaded: StrictInt = 0
    seconds: float
    devices_file: str | None = None
    written: StrictBool = False

    @property
    def failed(self) -> tuple[BoardOutcome, ...]:
        return tuple(d for d in self.devices if not d.succeeded)
