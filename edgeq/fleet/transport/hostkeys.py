"""The fleet known_hosts file: fingerprints, lookup, and `edgeq devices trust`.

paramiko is imported inside the functions that need it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError
from edgeq.fleet.transport.keyformat import fingerprint, host_entry
from edgeq.fleet.transport.ssherrors import classify_connect_error

__all__ = ["HostKey", "fetch_host_key", "fingerprint", "host_entry", "known_keys", "record_host_key"]


@dataclass(frozen=True)
class HostKey:
    device: str
    entry: str  # host or [host]:port
    keytype: str  # e.g. ssh-ed25519
    base64: str
    fingerprint: str
    jump_host: str | None = None  # the hop's name when this is a jump host's key, not the board's

    @property
    def line(self) -> str:
        return f"{self.entry} {self.keytype} {self.base64}"

    def public(self) -> dict:
        return {"device": self.device, "host": self.entry, "keytype": self.keytype, "fingerprint": self.fingerprint}


def fetch_host_key(device: DeviceSpec, *, sock: Any = None, jump_host: str | None = None) -> HostKey:
    """Do the SSH key exchange only (no authentication) and return the key the server presents.

    sock: a channel tunnelled through verified jump hosts (else a direct TCP connection)."""
    import paramiko

    if device.transport != "ssh":
        raise BoardError(device.name, "is a local board; there is no host key to trust", kind="usage")
    if sock is None:
        try:
            sock = socket.create_connection((device.host, device.port), timeout=device.connect_timeout)
        except OSError as e:
            raise classify_connect_error(device, e) from None
    t = paramiko.Transport(sock)
    t.banner_timeout = device.connect_timeout
    try:
        t.start_client(timeout=device.connect_timeout)
        key = t.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise BoardError(
            device.name,
            f"SSH handshake with {device.address} failed: {e}",
            "check host and port point at an SSH server",
            kind="unreachable",
        ) from None
    finally:
        t.close()
    blob = key.asbytes()
    entry = host_entry(str(device.host), device.port)
    return HostKey(device.name, entry, key.get_name(), key.get_base64(), fingerprint(blob), jump_host)


def _entry_matches(hosts_field: str, entry: str) -> bool:
    for h in hosts_field.split(","):
        if h.startswith("|1|"):
            try:
                _, _, salt_b64, hash_b64 = h.split("|")
                salt = base64.b64decode(salt_b64)
                digest = hmac.new(salt, entry.encode(), hashlib.sha1).digest()
            except (ValueError, TypeError):
                continue
            if hmac.compare_digest(base64.b64encode(digest).decode(), hash_b64):
                return True
        elif h == entry:
            return True
    return False


def known_keys(known_hosts: Path, entry: str) -> list[tuple[str, str]]:
    """(keytype, base64) recorded for a host entry; markers (@revoked...) are skipped."""
    if not known_hosts.is_file():
        return []
    out = []
    for raw in known_hosts.read_text(encoding="utf-8", errors="replace").splitlines():
        f = raw.split()
        if len(f) >= 3 and not raw.lstrip().startswith(("#", "@")) and _entry_matches(f[0], entry):
            out.append((f[1], f[2]))
    return out


@contextlib.contextmanager
def _locked(known_hosts: Path) -> Iterator[None]:
    """Hold an flock on a sidecar of known_hosts: the file itself is replaced by rename, so it cannot carry the lock.

    Two `devices trust` at once would otherwise both read the old file and the second rename drop the first's line.
    """
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(known_hosts.with_name(known_hosts.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds: a read, a write, a rename
        yield
    finally:
        os.close(fd)


def record_host_key(known_hosts: Path, key: HostKey, *, replace: bool = False) -> str:
    """Add key to known_hosts (atomic rewrite, mode 0600). Returns 'added', 'unchanged' or 'replaced'.

    A different key already recorded for the host is refused unless replace=True: that decision
    (was the board reinstalled, or is someone in the middle?) belongs to a person.
    """
    with _locked(known_hosts):
        existing = known_keys(known_hosts, key.entry)
        if (key.keytype, key.base64) in existing:
            return "unchanged"
        if existing and not replace:
            raise BoardError(
                key.device,
                f"{known_hosts} already holds a different host key for {key.entry}; "
                f"the server now presents {key.keytype} {key.fingerprint}",
                f"if the board was reinstalled, run `edgeq devices trust {key.device} --replace` "
                f"(or remove the old line for {key.entry} from {known_hosts})",
                kind="host_key_changed",
            )
        lines = known_hosts.read_text(encoding="utf-8", errors="replace").splitlines() if known_hosts.is_file() else []
        if replace:
            lines = [
                ln
                for ln in lines
                if not (len(ln.split()) >= 3 and not ln.lstrip().startswith("#") and _entry_matches(ln.split()[0], key.entry))
            ]
        lines.append(key.line)
        _rewrite(known_hosts, lines)
    return "replaced" if existing else "added"


def _rewrite(known_hosts: Path, lines: list[str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=known_hosts.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, known_hosts)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
