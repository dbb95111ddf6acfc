"""`devices setup`: make a bare board ready to run the agent, with no internet on the board.

Per board: read its facts with its own python (no agent yet) -> choose the runtime (setupplan) ->
download the wheels on this machine (wheelcache) -> upload them to W/wheels (temp names, sha256
checked on the board, then renamed) -> `python -m venv W/venv` -> `pip install --no-index` from
W/wheels -> load and invoke a tiny model with the venv's python -> write W/venv/edgeq-setup.json.
A rerun that finds that marker, the same wheels and a passing verification changes nothing.
The system Python is only ever used to create the venv.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

from edgeq.errors import ConfigError
from edgeq.fleet.fanout import ProgressFn
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.setup.plan import choose_runtime, coral_warning, platform_key, wheel_platforms
from edgeq.fleet.setup.scripts import PROBE, SYNC, TINY_EXPECTED, TINY_MODEL_B64, VERIFY
from edgeq.fleet.setup.wheelcache import WheelSet, WheelsUnavailable, fetch_wheels
from edgeq.fleet.transport.base import BoardError, Transport, TransportFactory
from edgeq.fleet.transport.remotehome import expand_home, resolve_workdir
from edgeq.records.setup import BoardProbe, RuntimeChoice, SetupOutcome, SetupSummary

MARKER = "edgeq-setup.json"
NO_PYTHON_HINT = (
    "install Python 3 on the board (Raspberry Pi OS, Ubuntu: sudo apt install python3 python3-venv) "
    "or set python: in devices.yaml to its interpreter's path"
)


class _Session:
    """One board being set up: its transport, resolved paths and the run helper."""

    def __init__(self, device: DeviceSpec, t: Transport):
        self.d, self.t = device, t
        home = t.home()
        self.workdir = resolve_workdir(str(device.workdir), home)
        self.venv = f"{self.workdir}/venv"
        self.venv_python = f"{self.venv}/bin/python"
        self.wheels = f"{self.workdir}/wheels"
        self.python = expand_home(str(device.python), home)
        self.bytes_uploaded = 0

    def run(self, argv: list[str], what: str, timeout: float | None = None) -> tuple[int, str, str]:
        return self.t.run(argv, timeout or self.d.command_timeout)

    def json_of(self, argv: list[str], what: str) -> dict:
        """Run a board-side script; its last JSON line (shell noise before it is skipped)."""
        rc, out, err = self.run(argv, what)
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    break
        if rc in (126, 127):
            raise BoardError(
                self.d.name, f"cannot run the board's python {argv[0]!r} (not found)", NO_PYTHON_HINT, kind="no_python"
            )
        raise BoardError(self.d.name, f"{what} failed (exit {rc}): {_tail(err or out)}", kind="setup_failed")

    def fail(self, message: str, hint: str | None, kind: str) -> BoardError:
        return BoardError(self.d.name, message, hint, kind=kind)


def _tail(text: str, n: int = 400) -> str:
    text = text.strip()
    return ("..." + text[-n:]) if len(text) > n else text


def probe_board(s: _Session) -> tuple[BoardProbe, str]:
    """The board's facts and the base interpreter; a configured venv python that is gone falls back to python3."""
    candidates = [s.python] if s.python != s.venv_python else [s.venv_python, "python3"]
    last: BoardError | None = None
    for py in candidates:
        try:
            doc = s.json_of([py, "-c", PROBE, s.workdir], "reading the board's facts")
        except BoardError as e:
            if e.kind != "no_python":
                raise
            last = e
            continue
        probe = BoardProbe.model_validate(doc)
        base = py if py != s.venv_python else str((probe.marker or {}).get("base_python") or "python3")
        return probe, base
    assert last is not None  # noqa: S101 - candidates is never empty
    raise last


def _want_marker(choice: RuntimeChoice, wheels: WheelSet, base: str) -> dict[str, Any]:
    return {"runtime": choice.runtime, "module": choice.module, "wheels": dict(wheels.files), "base_python": base}


def _same(marker: dict | None, want: dict[str, Any]) -> bool:
    return bool(marker) and all(marker.get(k) == want[k] for k in ("runtime", "module", "wheels"))  # type: ignore[union-attr]


def pick_wheels(s: _Session, probe: BoardProbe) -> tuple[RuntimeChoice, WheelSet]:
    platforms = wheel_platforms(probe.arch, probe.glibc)
    key = platform_key(probe.arch, probe.glibc, probe.py)
    errors = []
    for choice in choose_runtime(probe.py, probe.arch, probe.glibc):
        try:
            return choice, fetch_wheels(choice, probe.py, platforms, key)
        except WheelsUnavailable as e:
            errors.append(e.message)
    raise s.fail("; ".join(errors), "see which runtimes PyPI has for this board in docs/fleet.md#prepare-a-board", "no_wheels")


def upload_wheels(s: _Session, wheels: WheelSet) -> None:
    """Put every wheel in W/wheels: missing ones go up as *.part, the board checks sha256 and renames."""
    pairs = [f"{n}={h}" for n, h in wheels.files]
    s.t.makedirs(s.wheels)
    have = set(s.json_of([s.python, "-c", SYNC, s.wheels, *pairs], "checking the wheels on the board")["have"])
    for name, _ in wheels.files:
        if name not in have:
            remote = f"{s.wheels}/{name}.part"
            try:
                s.bytes_uploaded += s.t.put_file(wheels.folder / name, remote)
            except BaseException:
                s.t.remove(remote)
                raise
    res = s.json_of([s.python, "-c", SYNC, s.wheels, *pairs], "verifying the uploaded wheels")
    missing = sorted(set(wheels.names) - set(res["have"]))
    if missing:
        raise s.fail(
            f"wheels corrupted in transit (sha256 mismatch): {', '.join(missing)}", "run devices setup again", "sha_mismatch"
        )


def make_venv(s: _Session, base: str, probe: BoardProbe) -> None:
    rc, out, err = s.run([base, "-m", "venv", "--clear", s.venv], "creating the venv")
    if rc == 0:
        return
    text = err or out
    if "ensurepip" in text or not probe.ensurepip:
        v = ".".join(probe.python.split(".")[:2])
        raise s.fail(
            f"cannot create a venv with {base} (Python {probe.python}): ensurepip is not available",
            f"install the venv module on the board: sudo apt install python3-venv (or python{v}-venv)",
            "no_venv",
        )
    if rc in (126, 127):
        raise s.fail(f"cannot run the board's python {base!r} (not found)", NO_PYTHON_HINT, "no_python")
    raise s.fail(f"python -m venv {s.venv} failed (exit {rc}): {_tail(text)}", None, "setup_failed")


def install(s: _Session, wheels: WheelSet) -> None:
    argv = [s.venv_python, "-m", "pip", "install", "--no-index", "--find-links", s.wheels, "--no-cache-dir"]
    argv += ["--disable-pip-version-check", "--quiet", *(f"{s.wheels}/{n}" for n in wheels.names)]
    rc, out, err = s.run(argv, "installing the wheels")
    if rc:
        raise s.fail(f"pip install (offline, from {s.wheels}) failed (exit {rc}): {_tail(err or out)}", None, "install_failed")


def verify(s: _Session, choice: RuntimeChoice) -> dict:
    doc = s.json_of([s.venv_python, "-c", VERIFY, choice.module, TINY_MODEL_B64], "verifying the runtime")
    out = doc.get("output") or []
    if not doc.get("ok") or [round(v, 4) for v in out] != list(TINY_EXPECTED):
        why = doc.get("error") or f"output {out} != {list(TINY_EXPECTED)}"
        raise s.fail(f"{choice.runtime} in {s.venv} cannot run a tiny model: {why}", "run devices setup again", "verify_failed")
    return doc


def write_marker(s: _Session, marker: dict) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(marker, f, indent=1)
    local = Path(f.name)
    tmp = f"{s.venv}/.{secrets.token_hex(6)}.part"
    try:
        s.bytes_uploaded += s.t.put_file(local, tmp)
        s.t.rename(tmp, f"{s.venv}/{MARKER}")
    except BaseException:
        s.t.remove(tmp)
        raise
    finally:
        local.unlink(missing_ok=True)


def setup_one(device: DeviceSpec, t: Transport, progress: ProgressFn | None = None) -> SetupOutcome:
    """Make one connected board ready; its outcome (status changed, or ok with action unchanged)."""
    s = _Session(device, t)
    probe, base = probe_board(s)
    choice, wheels = pick_wheels(s, probe)
    want = _want_marker(choice, wheels, base)
    action = "unchanged"
    if not (probe.venv_python and _same(probe.marker, want)):
        if progress:
            progress({"event": "install", "device": device.name})
        upload_wheels(s, wheels)
        make_venv(s, base, probe)
        install(s, wheels)
        action = "set up"
    doc = verify(s, choice)
    if action != "unchanged":
        write_marker(s, {**want, "python": probe.python, "verified": doc})
    warn = coral_warning(probe, device.tags, device.delegate)
    return SetupOutcome(
        device=device.name,
        address=device.address,
        status="ok" if action == "unchanged" else "changed",
        action=action,
        error=None,
        python=s.venv_python,
        python_line=f"python: {s.venv_python}",
        base_python=base,
        base_python_version=probe.python,
        arch=probe.arch,
        glibc=probe.libc_version if probe.libc == "glibc" else None,
        os=probe.os_name,
        platform=wheels.platform,
        runtime=doc.get("runtime"),
        runtime_version=doc.get("runtime_version"),
        numpy=doc.get("numpy"),
        wheels=wheels.names,
        verified=True,
        verify_output=tuple(doc.get("output") or ()),
        warnings=(warn,) if warn else (),
        bytes_uploaded=s.bytes_uploaded,
    )


def setup(
    inventory: Inventory,
    targets: list[str],
    *,
    write: bool = False,
    parallel: int = 5,
    batches: str | list | None = None,
    max_fail: int | None = None,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
) -> SetupSummary:
    """Set up the targets (per-board failures are in the summary); with write, point devices.yaml at the venvs."""
    devices = inventory.select(targets)
    if write and inventory.source is None:
        raise ConfigError("--write needs a devices.yaml (none was found; the embedded default is in use)", "pass --devices FILE")
    op = FleetOp(devices, parallel=parallel, progress=progress, transport_factory=transport_factory)

    def job(d: DeviceSpec) -> SetupOutcome:
        if progress:
            progress({"event": "connect", "device": d.name, "address": d.address})
        t = op.factory(d)
        try:
            return setup_one(d, t, progress)
        finally:
            t.close()

    res = op.run(job, batches=batches, max_fail=max_fail)
    outcomes = list(res.devices)
    written = False
    if write:
        outcomes, written = _write_pythons(inventory, devices, outcomes)
    bad = res.counts.failed + res.counts.unreachable + res.counts.skipped
    return SetupSummary(
        ok=bad == 0,
        batches=res.batches,
        stopped_after_batch=res.stopped_after_batch,
        counts=res.counts,
        devices=tuple(outcomes),
        bytes_uploaded=sum(r.bytes_uploaded for r in outcomes),
        seconds=op.seconds(),
        devices_file=str(inventory.source) if inventory.source else None,
        written=written,
    )


def _write_pythons(inventory: Inventory, devices: list[DeviceSpec], outcomes: list) -> tuple[list, bool]:
    """One atomic rewrite of devices.yaml with every set-up board's python: line (comments kept)."""
    from edgeq.fleet.inventory.edit import set_device_python
    from edgeq.paths import atomic_write_bytes

    src = Path(str(inventory.source))
    text = original = src.read_text()
    for i, (d, rec) in enumerate(zip(devices, outcomes, strict=True)):
        if isinstance(rec, SetupOutcome) and rec.succeeded and rec.python and d.python != rec.python:
            text = set_device_python(text, d.name, rec.python, str(src))
            outcomes[i] = rec.replace(written=str(src))
    if text == original:
        return outcomes, False
    atomic_write_bytes(src, text.encode())
    return outcomes, True
