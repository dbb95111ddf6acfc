"""How OpenSSH writes host keys: fingerprints and known_hosts host names.

A leaf module: hostkeys (the trust store) and ssherrors (connection failures) both name keys the same
way, and neither has to import the other for it.
"""

from __future__ import annotations

import base64
import hashlib


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob: 'SHA256:' + base64 without padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare for port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"
