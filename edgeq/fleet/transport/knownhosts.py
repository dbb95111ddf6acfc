"""The fleet known_hosts as OpenSSH writes it: plain lines and the `@revoked` / `@cert-authority` markers.

paramiko's HostKeys.load cannot parse a marker line (the key type lands where it expects base64 and the
InvalidHostKey aborts the whole load, so one such line broke every connection). edgeq reads the file here:
plain lines go to paramiko; `@revoked` keys are refused for the hosts their patterns cover (before any
login, also where a plain line still lists the key); `@cert-authority` lines are kept only to say why a
host they cover is unknown: edgeq verifies host keys, never host certificates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True)
class KnownHostLine:
    lineno: int
    marker: str | None  # REVOKED, CERT_AUTHORITY or None (a plain host key)
    hosts: str  # the host field: comma-separated names, patterns or |1| hashes
    keytype: str
    base64: str

    @property
    def blob(self) -> bytes | None:
        try:
            return base64.b64decode(self.base64, validate=True)
        except (binascii.Error, ValueError):
            return None


@dataclass(frozen=True)
class KnownHosts:
    path: Path
    lines: tuple[KnownHostLine, ...] = ()

    @property
    def plain(self) -> list[KnownHostLine]:
        return [ln for ln in self.lines if ln.marker is None]

    def where(self, ln: KnownHostLine) -> str:
        return f"{self.path}:{ln.lineno}"

    def revoked(self, entry: str, blob: bytes) -> KnownHostLine | None:
        """The `@revoked` line that covers this key for this host entry (host or [host]:port), if any."""
        return next(
            (ln for ln in self.lines if ln.marker == REVOKED and ln.blob == blob and host_field_matches(ln.hosts, entry)),
            None,
        )

    def cert_authority(self, entry: str) -> KnownHostLine | None:
        return next((ln for ln in self.lines if ln.marker == CERT_AUTHORITY and host_field_matches(ln.hosts, entry)), None)


def read_known_hosts(path: Path) -> KnownHosts:
    """Every usable line of a known_hosts file (a missing file: none). A line OpenSSH would skip is skipped."""
    if not path.is_file():
        return KnownHosts(path)
    out = []
    for i, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        f = raw.split()
        if not f or f[0].startswith("#"):
            continue
        marker = None
        if f[0].startswith("@"):
            if f[0] not in (REVOKED, CERT_AUTHORITY):
                continue  # an unknown marker: OpenSSH skips the line
            marker, f = f[0], f[1:]
        if len(f) >= 3:
            out.append(KnownHostLine(i, marker, f[0], f[1], f[2]))
    return KnownHosts(path, tuple(out))


def host_field_matches(field: str, entry: str) -> bool:
    """OpenSSH known_hosts host patterns: names or wildcards (`*`, `?`), `!` negation wins, |1| hashes.

    entry is how OpenSSH names the host: `host`, or `[host]:port` for another port than 22."""
    entry = entry.lower()
    hit = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern.startswith("|1|"):
            matched = _hashed_matches(pattern, entry)
        else:
            matched = _wildcard(pattern.lower()).fullmatch(entry) is not None
        if matched and negated:
            return False
        hit = hit or matched
    return hit


def _wildcard(pattern: str) -> re.Pattern[str]:
    """OpenSSH's match_pattern: only `*` and `?` are special (`[127.0.0.1]:2222` is a literal, not a class)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _hashed_matches(pattern: str, entry: str) -> bool:
    try:
        _, _, salt_b64, hash_b64 = pattern.split("|")
        digest = hmac.new(base64.b64decode(salt_b64), entry.encode(), hashlib.sha1).digest()
    except (ValueError, TypeError, binascii.Error):
        return False
    return hmac.compare_digest(base64.b64encode(digest).decode(), hash_b64)
