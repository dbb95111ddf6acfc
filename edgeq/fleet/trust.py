"""`edgeq devices trust`: the host-key trust decision, without a terminal.

The caller supplies `confirm` (a person's answer: the CLI asks on a terminal) or `yes=True`. A key
already recorded is "unchanged" with no question; a different key recorded for the host is refused
unless `replace=True` (was the board reinstalled, or is someone in the middle? a person decides).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeq.errors import FleetError
from edgeq.fleet.hostkeys import HostKey, fetch_host_key, known_keys, record_host_key
from edgeq.fleet.inventory import DeviceSpec
from edgeq.records import Record

Confirm = Callable[[HostKey, Path], bool]  # (key presented, known_hosts file) -> trust it?


class TrustOutcome(Record):
    ok: bool = True
    device: str
    host: str  # host or [host]:port, as known_hosts names it
    keytype: str
    fingerprint: str
    known_hosts: str
    result: str  # added | replaced | unchanged


def trust(
    device: DeviceSpec,
    *,
    yes: bool = False,
    replace: bool = False,
    confirm: Confirm | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> TrustOutcome:
    """Fetch the board's host key and record it in the fleet known_hosts if a person (or --yes) agrees."""
    key = fetch_host_key(device)
    kh = Path(str(device.known_hosts))
    existing = known_keys(kh, key.entry)
    log(f"{device.name} ({key.entry}) presents {key.keytype} key {key.fingerprint}")
    if (key.keytype, key.base64) in existing:
        result = "unchanged"
    else:
        if existing and not replace:
            record_host_key(kh, key, replace=False)  # raises: a different key is recorded; a person decides
        if not yes:
            if confirm is None:
                raise FleetError(
                    f"{device.name}: not recorded: confirmation needed",
                    "compare the fingerprint with the board's own, then rerun with --yes",
                )
            if not confirm(key, kh):
                raise FleetError(
                    f"{device.name}: host key not trusted (declined)",
                    "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the board",
                )
        result = record_host_key(kh, key, replace=replace)
    return TrustOutcome(
        device=key.device,
        host=key.entry,
        keytype=key.keytype,
        fingerprint=key.fingerprint,
        known_hosts=str(kh),
        result=result,
    )
