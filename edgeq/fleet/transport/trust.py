"""`edgeq devices trust`: the host-key trust decision, without a terminal.

The caller supplies `confirm` (a person's answer: the CLI asks on a terminal) or `yes=True`. A key
already recorded is "unchanged" with no question; a different key recorded for the host is refused
unless `replace=True` (was the board reinstalled, or is someone in the middle? a person decides).
Jump hosts (ProxyJump) are trusted the same way, first, in connection order.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeq.errors import FleetError
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError
from edgeq.fleet.transport.hostkeys import HostKey, fetch_host_key, known_keys, record_host_key
from edgeq.fleet.transport.jump import close_all, hop_spec, open_route
from edgeq.fleet.transport.knownhosts import read_known_hosts
from edgeq.records import Record

Confirm = Callable[[HostKey, Path], bool]  # (key presented, known_hosts file) -> trust it?


class HopTrust(Record):
    """A jump host's key on the way to the board, as `devices trust` found (and maybe recorded) it."""

    name: str
    host: str
    keytype: str
    fingerprint: str
    result: str  # added | unchanged


class TrustOutcome(Record):
    ok: bool = True
    device: str
    host: str  # host or [host]:port, as known_hosts names it
    keytype: str
    fingerprint: str
    known_hosts: str
    result: str  # added | replaced | unchanged
    jump_hosts: tuple[HopTrust, ...] = ()  # in connection order; empty for a direct connection


def trust(
    device: DeviceSpec,
    *,
    yes: bool = False,
    replace: bool = False,
    confirm: Confirm | None = None,
    log: Callable[[str], None] = lambda _m: None,
    env: Mapping[str, str] | None = None,
) -> TrustOutcome:
    """Fetch the board's host key and record it in the fleet known_hosts if a person (or --yes) agrees.

    Behind jump hosts, each hop is handled first, in order, through the hops before it (already verified):
    an unknown hop key is asked about like the board's; a changed one is refused before the board is contacted.
    `replace` applies to the board's key only."""
    env = os.environ if env is None else env
    kh = Path(str(device.known_hosts))
    hops = []
    for i, hop in enumerate(device.jump):
        key = _fetch(device, i, env)
        log(f"jump host {hop.label} ({key.entry}) presents {key.keytype} key {key.fingerprint}")
        result = _decide(device, key, kh, yes=yes, replace=False, confirm=confirm)
        hops.append(HopTrust(name=hop.name, host=key.entry, keytype=key.keytype, fingerprint=key.fingerprint, result=result))
    key = _fetch(device, len(device.jump), env)
    log(f"{device.name} ({key.entry}) presents {key.keytype} key {key.fingerprint}")
    result = _decide(device, key, kh, yes=yes, replace=replace, confirm=confirm)
    return TrustOutcome(
        device=key.device,
        host=key.entry,
        keytype=key.keytype,
        fingerprint=key.fingerprint,
        known_hosts=str(kh),
        result=result,
        jump_hosts=tuple(hops),
    )


def _fetch(device: DeviceSpec, i: int, env: Mapping[str, str]) -> HostKey:
    """The key of hop i (i == len(jump): the board), reached through hops 0..i-1."""
    hop = device.jump[i] if i < len(device.jump) else None
    spec = hop_spec(device, hop) if hop else device
    name = hop.name if hop else None
    if i == 0:
        return fetch_host_key(spec, jump_host=name)
    clients, chan = open_route(device, device.jump[:i], (str(spec.host), spec.port), env)
    try:
        return fetch_host_key(spec, sock=chan, jump_host=name)
    finally:
        close_all(clients)


def _decide(device: DeviceSpec, key: HostKey, kh: Path, *, yes: bool, replace: bool, confirm: Confirm | None) -> str:
    what = f"jump host {key.jump_host}" if key.jump_host else device.name
    known = read_known_hosts(kh)
    revoked = known.revoked(key.entry, base64.b64decode(key.base64))
    if revoked is not None:  # never record a key the file revokes, whatever --yes or --replace say
        hop: dict[str, Any] = {"jump_host": key.jump_host} if key.jump_host else {}
        raise BoardError(
            device.name,
            f"{what if key.jump_host else 'the board'} ({key.entry}) presents {key.keytype} {key.fingerprint}, "
            f"which is marked @revoked in "
            f"{known.where(revoked)}: not recorded (a revoked key may be a stolen one)",
            f"check {what} on its console: if it still has that key, give it new host keys "
            "(ssh-keygen -A after removing /etc/ssh/ssh_host_*), then trust it again",
            kind="host_key_revoked",
            **hop,
        )
    existing = known_keys(kh, key.entry)
    if (key.keytype, key.base64) in existing:
        return "unchanged"
    if existing and key.jump_host:
        raise BoardError(
            device.name,
            f"via {what}: {kh} already holds a different host key for {key.entry}; the jump host now presents "
            f"{key.keytype} {key.fingerprint}. This may be a man-in-the-middle attack; nothing was sent to {device.name}",
            f"verify the fingerprint on the jump host's console (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub); if it "
            f"matches, remove the line for {key.entry} from {kh} and rerun `edgeq devices trust {device.name}`",
            kind="host_key_changed",
            jump_host=key.jump_host,
        )
    if existing and not replace:
        record_host_key(kh, key, replace=False)  # raises: a different key is recorded; a person decides
    if not yes:
        if confirm is None:
            raise FleetError(
                f"{device.name}: {what} not recorded: confirmation needed",
                "compare the fingerprint with the host's own, then rerun with --yes",
            )
        if not confirm(key, kh):
            raise FleetError(
                f"{device.name}: host key of {what} not trusted (declined)",
                "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on that host",
            )
    return record_host_key(kh, key, replace=replace)
