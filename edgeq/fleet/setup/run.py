"""`devices setup`: make a bare board ready to run the agent, with no internet on the board.

Per board: the work-dir check every other operation runs, on setup's own paths too (layout), with a python
outside W when there is one -> read its facts with its own python (no agent yet) -> choose the runtime
(plan) -> the wheels on this machine (wheelcache: downloaded, or cached and re-hashed) -> upload them to
W/wheels (temp names, sha256 checked on the board, then renamed) -> `python -m venv W/venvs/ID` beside the
current venv -> `pip install --no-index --require-hashes` of exactly those files and hashes (a wheel changed
after the board's check is refused) -> load and invoke a tiny model with the new venv's python -> write
its edgeq-setup.json -> under W/lock, point the link W/venv at venvs/ID in one rename and prune the other
venvs and old wheels (scripts.SWITCH). A rerun that finds the marker, the same wheels and a passing
verification changes nothing. The system Python is only ever used to check W, create the venv and switch.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

from edgeq.errors import ConfigError
from edgeq.fleet.board import AgentBundle, build_agent
from edgeq.fleet.fanout import ProgressFn
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.setup import layout
from edgeq.fleet.setup.plan import choose_runtime, coral_warning, platform_key, wheel_platforms
from edgeq.fleet.setup.scripts import DISCARD, PROBE, SYNC, TINY_EXPECTED, TINY_MODEL_B64, VERIFY
from edgeq.fleet.setup.session import MARKER, NO_PYTHON_HINT, SetupSession, put_text, tail
from edgeq.fleet.setup.wheelcache import WheelSet, WheelsUnavailable, fetch_wheels
from edgeq.fleet.setup.workdir import preflight, switch
from edgeq.fleet.transport.base import BoardError, Transport, TransportFactory
from edgeq.records.setup import BoardProbe, RuntimeChoice, SetupOutcome, SetupSummary


def probe_board(s: SetupSession) -> tuple[BoardProbe, str]:
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


def pick_wheels(s: SetupSession, probe: BoardProbe) -> tuple[RuntimeChoice, WheelSet]:
    platforms = wheel_platforms(probe.arch, probe.glibc)
    key = platform_key(probe.arch, probe.glibc, probe.py)
    errors = []
    for choice in choose_runtime(probe.py, probe.arch, probe.glibc):
        try:
            return choice, fetch_wheels(choice, probe.py, platforms, key)
        except WheelsUnavailable as e:
            errors.append(e.message)
    raise s.fail("; ".join(errors), "see which runtimes PyPI has for this board in docs/fleet.md#prepare-a-board", "no_wheels")


def upload_wheels(s: SetupSession, wheels: WheelSet) -> None:
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


def make_venv(s: SetupSession, base: str, probe: BoardProbe, target: str) -> None:
    """`python -m venv` at a new path beside the current venv (never --clear: nothing there to empty)."""
    s.t.makedirs(target.rsplit("/", 1)[0])
    rc, out, err = s.run([base, "-m", "venv", target], "creating the venv")
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
    raise s.fail(f"python -m venv {target} failed (exit {rc}): {tail(text)}", None, "setup_failed")


def requirements(wheel_dir: str, files: tuple[tuple[str, str], ...]) -> str:
    """A pip requirements file naming each wheel by its file URL and sha256: with --require-hashes, pip
    installs exactly these bytes (and refuses a dependency that is not among them)."""
    return "".join(f"file://{urllib.parse.quote(f'{wheel_dir}/{n}')} --hash=sha256:{h}\n" for n, h in files)


def install(s: SetupSession, wheels: WheelSet) -> None:
    venv = s.building or s.venv
    req = f"{venv}/edgeq-requirements.txt"
    put_text(s, requirements(s.wheels, wheels.files), req)
    argv = [f"{venv}/bin/python", "-m", "pip", "install", "--no-index", "--require-hashes", "--no-cache-dir"]
    argv += ["--disable-pip-version-check", "--quiet", "-r", req]
    rc, out, err = s.run(argv, "installing the wheels")
    if rc and "DO NOT MATCH THE HASHES" in (err + out):
        raise s.fail(
            f"pip refused a wheel in {s.wheels}: it no longer matches the sha256 the board checked after its upload "
            f"(changed on the board since): {tail(err or out, 300)}",
            f"find out who else can write {s.wheels} on the board, then run devices setup again",
            "install_failed",
        )
    if rc:
        raise s.fail(f"pip install (offline, from {s.wheels}) failed (exit {rc}): {tail(err or out)}", None, "install_failed")


def verify(s: SetupSession, choice: RuntimeChoice, python: str) -> dict:
    doc = s.json_of([python, "-c", VERIFY, choice.module, TINY_MODEL_B64], "verifying the runtime")
    out = doc.get("output") or []
    if not doc.get("ok") or [round(v, 4) for v in out] != list(TINY_EXPECTED):
        why = doc.get("error") or f"output {out} != {list(TINY_EXPECTED)}"
        where = python.rsplit("/bin/", 1)[0]
        raise s.fail(f"{choice.runtime} in {where} cannot run a tiny model: {why}", "run devices setup again", "verify_failed")
    return doc


def write_marker(s: SetupSession, marker: dict, venv: str) -> None:
    put_text(s, json.dumps(marker, indent=1), f"{venv}/{MARKER}")


def build_venv(s: SetupSession, base: str, probe: BoardProbe, choice: RuntimeChoice, wheels: WheelSet, want: dict) -> dict:
    """A new venv beside the current one: made, installed, verified, marked, then switched in; on any failure
    it is removed again and the current venv stays. Returns the verification."""
    venv_id = layout.new_id()
    s.building = f"{s.workdir}/{layout.VENVS}/{venv_id}"
    try:
        make_venv(s, base, probe, s.building)
        install(s, wheels)
        doc = verify(s, choice, f"{s.building}/bin/python")
        write_marker(s, {**want, "python": probe.python, "verified": doc}, s.building)
        switch(s, base, venv_id, wheels)
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the failure that got us here is what to report
            s.run([base, "-c", DISCARD, s.workdir, venv_id], "removing the unfinished venv", 120.0)
        raise
    finally:
        s.building = None
    return doc


def setup_one(
    device: DeviceSpec, t: Transport, progress: ProgressFn | None = None, agent: AgentBundle | None = None
) -> SetupOutcome:
    """Make one connected board ready; its outcome (status changed, or ok with action unchanged)."""
    s = SetupSession(device, t)
    preflight(s, agent or build_agent())
    probe, base = probe_board(s)
    choice, wheels = pick_wheels(s, probe)
    want = _want_marker(choice, wheels, base)
    if probe.venv_python and _same(probe.marker, want):
        action = "unchanged"
        doc = verify(s, choice, s.venv_python)
    else:
        action = "set up"
        if progress:
            progress({"event": "install", "device": device.name})
        upload_wheels(s, wheels)
        doc = build_venv(s, base, probe, choice, wheels, want)
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
            return setup_one(d, t, progress, op.agent)
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
